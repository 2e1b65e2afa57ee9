"""The four panels, by the names users put in ``DEBUG_TOOLBAR_PANELS``."""

from ..explain.panel import ExplainPanel
from ..instances.panel import ModelInstancesPanel
from ..line_memory.panel import LineMemoryPanel
from ..sampling.panel import SamplingProfilerPanel

__all__ = ["ExplainPanel", "LineMemoryPanel", "ModelInstancesPanel", "SamplingProfilerPanel"]
