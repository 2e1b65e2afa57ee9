"""The README documents every setting with its real default."""

from __future__ import annotations

import re
from pathlib import Path

from debug_toolbar_perf.conf import SCHEMA

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def readme_settings_block() -> str:
    match = re.search(r"```python\nDEBUG_TOOLBAR_PERF = \{\n(.*?)\n\}\n```", README, re.S)
    assert match, "the README has no DEBUG_TOOLBAR_PERF block"
    return match.group(1)


def test_every_setting_is_documented_with_its_default() -> None:
    block = readme_settings_block()
    for section, options in SCHEMA.items():
        for key, option in options.items():
            line = re.search(rf'"{key}": ([^#\n]*?),?\s*(#|$)', block, re.M)
            assert line, f"{section}.{key} is not in the README"
            documented = eval(line.group(1).rstrip(","))  # literals only
            assert documented == option.default, f"{section}.{key}: README {documented!r}"
