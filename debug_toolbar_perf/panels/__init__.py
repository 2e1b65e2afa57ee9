"""The four panels, by the names users put in ``DEBUG_TOOLBAR_PANELS``."""

from .explain import ExplainPanel
from .instances import ModelInstancesPanel
from .line_memory import LineMemoryPanel
from .sampling import SamplingProfilerPanel

__all__ = ["ExplainPanel", "LineMemoryPanel", "ModelInstancesPanel", "SamplingProfilerPanel"]
