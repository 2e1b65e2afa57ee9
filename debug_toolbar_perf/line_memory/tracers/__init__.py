"""The two ways to get line events: ``sys.monitoring`` (3.12+) and ``sys.settrace``."""
