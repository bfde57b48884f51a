"""`python -m addicted_jobs` is the same as the `addicted-jobs` command."""

import sys

from addicted_jobs.cli import main

sys.exit(main())
