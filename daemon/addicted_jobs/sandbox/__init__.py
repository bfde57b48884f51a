"""The fake Addic7ed and TMDB upstreams served over real HTTP on loopback, for the demo, tests and
benchmarks. Not an upstream client: only the command line (and the demo) may import it, which
import-linter checks. Run alone with `python -m addicted_jobs.sandbox --shows 1000 --port 8080`.
"""

from addicted_jobs.sandbox.faults import FaultConfig, SeenRequest
from addicted_jobs.sandbox.server import Sandbox, main

__all__ = ["FaultConfig", "Sandbox", "SeenRequest", "main"]
