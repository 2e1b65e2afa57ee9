"""What pyproject.toml cannot say: the package's two small C extensions.

``optional=True``: where one does not build (no compiler, not glibc/macOS), the package
still installs. Without ``_heapcount`` the line-memory panel measures RSS by default and
says why; without ``_stacks`` other threads' stacks are read in Python with the garbage
collector off (3.11) instead of in one C call.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "debug_toolbar_perf.line_memory._heapcount",
            ["debug_toolbar_perf/line_memory/_heapcount.c"],
            optional=True,
        ),
        # Other threads' stacks read with the garbage collector off (3.11 crash: _stacks.c).
        Extension("debug_toolbar_perf._stacks", ["debug_toolbar_perf/_stacks.c"], optional=True),
    ]
)
