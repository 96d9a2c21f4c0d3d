"""HTTP routes of cycle-runner, one module per resource."""

from prodflow_cycle_runner.routes import crates, cycles, invalidations, provenance, runs, software

# provenance first: its static /api/cycles/files/provenance must not be taken for a cycle named "files"
ROUTERS = [provenance.router, cycles.router, software.router, runs.router, crates.router, invalidations.router]
