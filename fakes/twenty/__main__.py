"""Serve the fake Twenty on uvicorn for end-to-end tests and the local demo.

python -m fakes.twenty --host 127.0.0.1 --port 3000 --dialect 2.x --api-key KEY
"""

from __future__ import annotations

import argparse

import uvicorn

from . import FakeTwenty
from .app import REAL_TIMING


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m fakes.twenty", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--dialect", choices=["1.x", "2.x"], default="2.x")
    parser.add_argument("--api-key", default="twenty-test-key")
    parser.add_argument("--rate-limit", type=int, default=None, help="requests per 60 s on the data API")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every data-API call")
    parser.add_argument(
        "--timing", choices=["none", "real"], default="none", help="real: answer as slowly as a real Twenty 2.x did"
    )
    parser.add_argument("--max-upsert", type=int, default=None, help="records one upsert may carry (2.x: 200)")
    args = parser.parse_args(argv)
    fake = FakeTwenty(
        dialect=args.dialect,
        api_key=args.api_key,
        rate_limit_per_minute=args.rate_limit,
        latency=args.latency,
        timing=REAL_TIMING if args.timing == "real" else None,
        max_upsert=args.max_upsert,
    )
    print(f"Fake Twenty {args.dialect} on http://{args.host}:{args.port}/ (viewer at /, API key {args.api_key!r})")
    uvicorn.run(fake, host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
