"""Performance panels for django-debug-toolbar.

Data flows one way: engine (measures one request) -> record (JSON-ready dict)
-> analysis (findings) -> render (panel HTML, terminal, exports).
"""

__version__ = "0.1.0.dev0"
