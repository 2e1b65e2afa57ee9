"""The one thing pyproject.toml cannot say: the line-memory panel's C counting allocator.

``optional=True``: where it does not build (no compiler, not glibc/macOS), the package still
installs, and the panel measures RSS by default and says why.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "debug_toolbar_perf.line_memory._heapcount",
            ["debug_toolbar_perf/line_memory/_heapcount.c"],
            optional=True,
        )
    ]
)
