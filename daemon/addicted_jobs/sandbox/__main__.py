"""`python -m addicted_jobs.sandbox`: the fake upstreams alone, until SIGINT or SIGTERM."""

from addicted_jobs.sandbox.server import main

main()
