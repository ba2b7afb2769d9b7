"""A faithful fake TwentyCRM server (ASGI, Starlette) speaking the "1.x" or "2.x" dialect.

    from fakes.twenty import FakeTwenty
    fake = FakeTwenty(dialect="2.x", api_key="twenty-test-key")
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=fake), base_url="http://twenty.test")

`python -m fakes.twenty --port 3000` serves it on loopback with a small HTML viewer at /.
Behaviour follows /work/shared/research/twenty-api.md (2.x) and twenty-observed.md (1.x).
"""

from .app import FakeTwenty, FakeTwentyStats, TokenBucket
from .errors import TwentyError

__all__ = ["FakeTwenty", "FakeTwentyStats", "TokenBucket", "TwentyError"]
