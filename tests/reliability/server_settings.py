"""Settings of the real servers in test_servers.py and soak.py: the demo plus the probe views.

Environment knobs:

* PERF_RESULTS_CACHE_SIZE: the toolbar's RESULTS_CACHE_SIZE. The isolation tests keep every
  request of the load (16 clients fetch each page's panels after the page; with the default
  25 a busy server drops a request's data before its client asks for it); the memory tests
  run with the toolbar's default.
* PERF_SAMPLING_ENGINE: SAMPLING.ENGINE ('auto', 'vmprof', 'thread').
* PERF_PANELS: which of our panels are on: "all" (default), "none", or one class name
  such as "SamplingProfilerPanel".
"""

import os

from demo_site.settings import *  # noqa: F403
from demo_site.settings import DEBUG_TOOLBAR_CONFIG, DEBUG_TOOLBAR_PANELS, DEBUG_TOOLBAR_PERF

ROOT_URLCONF = "tests.reliability.urls"

if os.environ.get("PERF_RESULTS_CACHE_SIZE"):
    DEBUG_TOOLBAR_CONFIG = {
        **DEBUG_TOOLBAR_CONFIG,
        "RESULTS_CACHE_SIZE": int(os.environ["PERF_RESULTS_CACHE_SIZE"]),
    }
if os.environ.get("PERF_SAMPLING_ENGINE"):
    DEBUG_TOOLBAR_PERF = {
        **DEBUG_TOOLBAR_PERF,
        "SAMPLING": {"ENGINE": os.environ["PERF_SAMPLING_ENGINE"]},
    }
_ours = os.environ.get("PERF_PANELS", "all")
if _ours != "all":
    DEBUG_TOOLBAR_PANELS = [
        p
        for p in DEBUG_TOOLBAR_PANELS
        if not p.startswith("debug_toolbar_perf.") or p.endswith("." + _ours)
    ]
