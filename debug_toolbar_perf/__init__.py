"""Performance panels for django-debug-toolbar.

Data flows one way, per panel (one folder each: ``sampling/``, ``line_memory/``,
``instances/``, ``explain/``): engine (measures one request) -> record (JSON-native,
stored by the toolbar) -> report (findings) -> panel HTML, terminal, exports.
"""

__version__ = "0.1.0.dev0"


def __getattr__(name: str) -> object:
    """Lazy public helpers, so importing the package never imports Django models."""
    if name == "profile_memory":
        from .line_memory.targets import profile_memory

        return profile_memory
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
