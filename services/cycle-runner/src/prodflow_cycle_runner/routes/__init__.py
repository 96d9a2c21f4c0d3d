"""HTTP routes of cycle-runner, one module per resource."""

from prodflow_cycle_runner.routes import cycles, invalidations, runs, software

ROUTERS = [cycles.router, software.router, runs.router, invalidations.router]
