import asyncio
from typing import Any
from tests.sync.conftest import make_world
from bridge.services import run_sync

async def test_dbg(tmp_path: Any) -> None:
    world = await make_world(tmp_path, "2.x", TWENTY_REQUESTS_PER_MINUTE=6000)
    world.twenty.set_rate_limit(3)
    result = await run_sync(world.settings, kind="full", transports=world.transports)
    print("RESULT", result.status, world.twenty.stats.as_dict())
    assert False
