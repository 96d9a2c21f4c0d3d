"""A started service freezes what start-up built and collects generation 0 less often (in its own process)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from prodflow_core.collector import GEN0_ALLOCATIONS

_STARTS_AN_APP = textwrap.dedent(
    """
    import asyncio, contextlib, gc, json
    from prodflow_core.service import create_service_app
    from prodflow_core.settings import ServiceSettings

    @contextlib.asynccontextmanager
    async def lifespan(app):
        app.state.built = [{"n": n} for n in range(1000)]  # what a service keeps for its lifetime
        yield

    app = create_service_app(name="t", title="t", settings=ServiceSettings(log_json=False), lifespan=lifespan,
                             routers=[])
    before = {"frozen": gc.get_freeze_count(), "gen0": gc.get_threshold()[0]}

    async def main():
        async with app.router.lifespan_context(app):
            after = {"frozen": gc.get_freeze_count(), "gen0": gc.get_threshold()[0]}
            scanned = any(o is app.state.built for o in gc.get_objects())  # frozen objects are in no generation
            print(json.dumps({"before": before, "after": after, "built_scanned": scanned}))

    asyncio.run(main())
    """
)


def test_a_started_service_freezes_its_start_up_objects_and_raises_the_gen0_threshold() -> None:
    done = subprocess.run([sys.executable, "-c", _STARTS_AN_APP], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["before"] == {"frozen": 0, "gen0": 700}, "the app factory alone must not touch the collector"
    assert seen["after"]["gen0"] == GEN0_ALLOCATIONS
    # The lifespan's own objects (1,000 dicts and their list) and the imports are frozen: never scanned again.
    assert seen["after"]["frozen"] > 1001
    assert not seen["built_scanned"]
