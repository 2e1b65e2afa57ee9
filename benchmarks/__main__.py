"""python -m benchmarks [--quick] [--only NAME ...]: see benchmarks/run.py."""

from .run import main

raise SystemExit(main())
