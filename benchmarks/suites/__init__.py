"""One module per comparison; each exposes ``run(quick: bool) -> list[Result]``."""

from . import explain, instances, line_memory, off, sampling, together

ALL = [together, sampling, line_memory, instances, explain, off]
