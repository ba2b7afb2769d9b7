"""Run a seeded fake Whop on uvicorn: `python -m fakes.whop --port 8100 --members 50`."""

from __future__ import annotations

import argparse
import json
import time

import uvicorn

from fakes.whop import FakeWhop, seed_company, seed_fixtures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fakes.whop", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8100)
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--memberships", type=int, default=None, help="default: 1.2 × members")
    parser.add_argument("--products", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--company-id", default="biz_demo")
    parser.add_argument("--title", default="Pickaxe Trading")
    parser.add_argument("--shared-email", action="append", default=[], help="repeatable")
    parser.add_argument(
        "--now",
        default="now",
        help="'now' (default: data relative to today; ids do not depend on it), 'anchor' "
        "(the fixed test anchor, fully reproducible) or an ISO timestamp",
    )
    parser.add_argument("--with-fixtures", action="store_true", help="also load the fact sheet §7 company")
    parser.add_argument("--api-key", default="whop-test-key")
    parser.add_argument("--client-id", default="app_test")
    parser.add_argument("--client-secret", default="whop-client-secret")
    parser.add_argument("--redirect-uri", action="append", default=None, help="repeatable")
    parser.add_argument("--access-token-ttl", type=float, default=3600)
    parser.add_argument("--rate-limit-per-minute", type=int, default=None)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to each API call")
    args = parser.parse_args(argv)

    fake = FakeWhop(
        api_key=args.api_key,
        client_id=args.client_id,
        client_secret=args.client_secret,
        redirect_uris=args.redirect_uri or ["http://127.0.0.1:8000/oauth/callback"],
        access_token_ttl=args.access_token_ttl,
        rate_limit_per_minute=args.rate_limit_per_minute,
        latency=args.latency,
    )
    seed_company(
        fake,
        company_id=args.company_id,
        title=args.title,
        members=args.members,
        memberships=args.memberships,
        products=args.products,
        seed=args.seed,
        shared_emails=args.shared_email,
        now=None if args.now == "anchor" else time.time() if args.now == "now" else args.now,
    )
    if args.with_fixtures:
        seed_fixtures(fake)
    base = f"http://{args.host}:{args.port}"
    print(f"fake Whop on {base}  (API {base}/api/v1, OAuth {base}/oauth/authorize, state {base}/_fake)")
    print(json.dumps(fake.summary(), indent=2))
    uvicorn.run(fake, host=args.host, port=args.port, log_level="info", lifespan="off")


if __name__ == "__main__":
    main()
