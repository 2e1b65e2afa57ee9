"""One module per comparison; each exposes ``run(quick: bool) -> list[Result]``."""

from . import overall, sampling

ALL = [overall, sampling]
