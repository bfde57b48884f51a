"""`python -m daemon` is the same as the `addicted-jobs` command."""

import sys

from daemon.cli import main

sys.exit(main())
