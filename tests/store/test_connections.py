from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet, MultiFernet
from sqlalchemy.ext.asyncio import AsyncEngine

from bridge.config import load_settings
from bridge.crypto import TokenBox, UndecryptableToken, generate_key
from bridge.store import connections as repo
from bridge.store.tables import connections

KEY_A = generate_key()
KEY_B = generate_key()
ACCESS = "acc_SECRET_access_token_value"
REFRESH = "ref_SECRET_refresh_token_value"
EXPIRES = datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)


def box(*keys: str) -> TokenBox:
    return TokenBox(MultiFernet([Fernet(k) for k in keys]))


async def connect(engine: AsyncEngine, b: TokenBox, company_id: str = "biz_1", **overrides: object) -> repo.Connection:
    args: dict[str, object] = {
        "company_id": company_id,
        "company_title": "Acme",
        "mode": "oauth",
        "access_token": ACCESS,
        "refresh_token": REFRESH,
        "expires_at": EXPIRES,
        "scopes": ["read", "member:basic:read"],
        "whop_user_id": "user_1",
    }
    args.update(overrides)
    return await repo.upsert_connection(engine, b, **args)  # type: ignore[arg-type]


async def raw_row(engine: AsyncEngine, company_id: str) -> dict[str, object]:
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(connections).where(connections.c.company_id == company_id))).one()
    return dict(row._mapping)


async def test_round_trip_keeps_tokens_unreadable_at_rest(engine: AsyncEngine) -> None:
    b = box(KEY_A)
    created = await connect(engine, b)
    assert created.company_id == "biz_1" and created.status == repo.STATUS_CONNECTED
    assert created.scope_list == ["read", "member:basic:read"]
    assert created.token_expires_at == EXPIRES
    assert created.connected_at.tzinfo is UTC
    assert created.access_token(b) == ACCESS and created.refresh_token(b) == REFRESH
    assert ACCESS not in repr(created) and str(created.access_token_enc) not in repr(created)

    raw = await raw_row(engine, "biz_1")
    for column in ("access_token_enc", "refresh_token_enc"):
        assert isinstance(raw[column], str)
        assert ACCESS not in raw[column] and REFRESH not in raw[column]  # type: ignore[operator]
    assert all(ACCESS not in str(v) and REFRESH not in str(v) for v in raw.values())

    assert await repo.read_tokens(engine, b, "biz_1") == (ACCESS, REFRESH, EXPIRES)
    fetched = await repo.get_connection(engine, "biz_1")
    assert fetched == created
    assert await repo.get_connection(engine, "biz_missing") is None


async def test_reconnect_updates_in_place(engine: AsyncEngine) -> None:
    b = box(KEY_A)
    first = await connect(engine, b)
    await repo.mark_needs_reconnect(engine, "biz_1", "invalid_grant")
    assert (await repo.get_connection(engine, "biz_1")).status == repo.STATUS_NEEDS_RECONNECT  # type: ignore[union-attr]
    again = await connect(engine, b, company_title=None, access_token="new_access", scopes="read")
    assert again.id == first.id
    assert again.status == repo.STATUS_CONNECTED and again.last_error is None
    assert again.company_title == "Acme"  # kept when the reconnect brought none
    assert again.access_token(b) == "new_access" and again.scopes == "read"


async def test_key_rotation(engine: AsyncEngine) -> None:
    await connect(engine, box(KEY_A))
    await connect(engine, box(KEY_A), company_id="biz_2")
    # Settings now "B,A": everything stored under A still decrypts.
    both = TokenBox(load_settings(BRIDGE_SECRET_KEY=f"{KEY_B},{KEY_A}").fernet)
    assert await repo.read_tokens(engine, both, "biz_1") == (ACCESS, REFRESH, EXPIRES)
    assert await repo.rotate_tokens(engine, both) == 2
    # Re-encrypted under B: B alone reads them, A alone no longer does.
    assert await repo.read_tokens(engine, box(KEY_B), "biz_2") == (ACCESS, REFRESH, EXPIRES)
    with pytest.raises(UndecryptableToken):
        await repo.read_tokens(engine, box(KEY_A), "biz_1")


async def test_save_tokens_is_atomic(engine: AsyncEngine) -> None:
    b = box(KEY_A)
    await connect(engine, b)
    stop = asyncio.Event()
    torn: list[tuple[str | None, str | None]] = []

    async def writer(i: int) -> None:
        exp = EXPIRES + timedelta(minutes=i)
        assert await repo.save_tokens(engine, b, "biz_1", f"access-{i}", f"refresh-{i}", exp)

    async def reader() -> None:
        while not stop.is_set():
            access, refresh, _ = await repo.read_tokens(engine, b, "biz_1")
            if access != ACCESS and (access or "").split("-")[1:] != (refresh or "").split("-")[1:]:
                torn.append((access, refresh))
            await asyncio.sleep(0)

    readers = [asyncio.create_task(reader()) for _ in range(3)]
    await asyncio.gather(*(writer(i) for i in range(20)))
    stop.set()
    await asyncio.gather(*readers)
    assert torn == []
    access, refresh, expires = await repo.read_tokens(engine, b, "biz_1")
    i = access.split("-")[1]  # type: ignore[union-attr]
    assert refresh == f"refresh-{i}" and expires == EXPIRES + timedelta(minutes=int(i))


async def test_disconnect_forgets_tokens(engine: AsyncEngine) -> None:
    b = box(KEY_A)
    await connect(engine, b)
    assert await repo.disconnect(engine, "biz_1")
    assert await repo.read_tokens(engine, b, "biz_1") == (None, None, None)
    gone = await repo.get_connection(engine, "biz_1")
    assert gone is not None and gone.status == repo.STATUS_DISCONNECTED and not gone.has_tokens
    raw = await raw_row(engine, "biz_1")
    assert raw["access_token_enc"] is None and raw["refresh_token_enc"] is None
    # A refresh that finishes after the disconnect must not bring the tokens back.
    assert not await repo.save_tokens(engine, b, "biz_1", "late", "late", EXPIRES)
    assert await repo.read_tokens(engine, b, "biz_1") == (None, None, None)


async def test_missing_connection(engine: AsyncEngine) -> None:
    with pytest.raises(repo.ConnectionNotFound, match="biz_nope"):
        await repo.read_tokens(engine, box(KEY_A), "biz_nope")
    assert not await repo.save_tokens(engine, box(KEY_A), "biz_nope", "a", "r", None)
    assert not await repo.mark_needs_reconnect(engine, "biz_nope", "x")
    assert not await repo.disconnect(engine, "biz_nope")


async def test_list_and_api_key_mode(engine: AsyncEngine) -> None:
    b = box(KEY_A)
    await connect(engine, b, company_id="biz_a")
    await connect(engine, b, company_id="biz_b", mode="api_key", access_token=None, refresh_token=None, expires_at=None)
    await repo.mark_needs_reconnect(engine, "biz_a", "invalid_grant")
    assert [c.company_id for c in await repo.list_connections(engine)] == ["biz_a", "biz_b"]
    assert [c.company_id for c in await repo.list_connections(engine, status="connected")] == ["biz_b"]
    api = await repo.get_connection(engine, "biz_b")
    assert api is not None and api.mode == "api_key" and api.access_token(b) is None
    with pytest.raises(ValueError, match="mode"):
        await connect(engine, b, mode="magic")


def _row(id_: int, mode: str, status: str, *, tokens: bool = True, day: int = 1) -> repo.Connection:
    at = datetime(2026, 12, day, tzinfo=UTC)
    return repo.Connection(
        id=id_,
        company_id=f"biz_{id_}",
        company_title=None,
        mode=mode,
        status=status,
        token_expires_at=None,
        scopes=None,
        whop_user_id=None,
        connected_at=at,
        updated_at=at,
        last_error=None,
        access_token_enc="ciphertext" if tokens and mode == "oauth" else None,
    )


@pytest.mark.parametrize(
    ("rows", "api_key", "expected"),
    [
        ([], False, []),
        # OAuth: connected with tokens counts, the most recently connected first.
        ([_row(1, "oauth", "connected", day=1), _row(2, "oauth", "connected", day=3)], False, [2, 1]),
        ([_row(1, "oauth", "needs_reconnect"), _row(2, "oauth", "disconnected")], False, []),
        ([_row(1, "oauth", "connected", tokens=False)], False, []),
        # API-key connections count only while WHOP_API_KEY is set, after OAuth ones.
        ([_row(1, "api_key", "connected"), _row(2, "oauth", "connected")], True, [2, 1]),
        ([_row(1, "api_key", "connected")], False, []),
        ([_row(1, "api_key", "disconnected")], True, []),
    ],
)
def test_the_active_connection_rule(rows: list[repo.Connection], api_key: bool, expected: list[int]) -> None:
    assert [c.id for c in repo.active(rows, api_key=api_key)] == expected


class Ticks:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def with_webhook(engine: AsyncEngine, b: TokenBox, company_id: str, secret: str) -> None:
    await connect(engine, b, company_id)
    await repo.save_webhook(engine, b, company_id, webhook_id=f"hook_{company_id}", url="u", secret=secret, health=None)


async def test_a_cached_secret_ends_once_it_is_older_than_the_max_age(engine: AsyncEngine) -> None:
    b, clock = box(KEY_A), Ticks()
    await with_webhook(engine, b, "biz_1", "ws_one")
    cache = repo.SecretCache(lambda: engine, lambda: b, clock=clock)
    assert await cache.get("biz_1") == ["ws_one"]
    await repo.disconnect(engine, "biz_1")  # by another process: this cache is not told
    clock.now += repo.SecretCache.MAX_AGE - 0.1
    assert await cache.get("biz_1") == ["ws_one"]  # within the bound, no read
    clock.now += 0.1
    assert await cache.get("biz_1") == []


async def test_a_burst_arriving_as_the_secrets_expire_reads_the_store_once(engine: AsyncEngine) -> None:
    b, clock = box(KEY_A), Ticks()
    await with_webhook(engine, b, "biz_1", "ws_one")
    reads = 0

    def counted() -> AsyncEngine:
        nonlocal reads
        reads += 1
        return engine

    cache = repo.SecretCache(counted, lambda: b, clock=clock)
    answers = await asyncio.gather(*(cache.get("biz_1") for _ in range(50)))
    assert answers == [["ws_one"]] * 50 and reads == 1
    clock.now += repo.SecretCache.MAX_AGE
    answers = await asyncio.gather(*(cache.get("biz_1") for _ in range(50)))
    assert answers == [["ws_one"]] * 50 and reads == 2
    # A failed verification's refresh is held to one read a second, too.
    await asyncio.gather(*(cache.get("biz_1", fresh=True) for _ in range(10)))
    assert reads == 2
    clock.now += repo.SecretCache.REFRESH_SECONDS
    await asyncio.gather(*(cache.get("biz_1", fresh=True) for _ in range(10)))
    assert reads == 3


async def test_a_secret_that_cannot_be_decrypted_leaves_the_other_companies_secrets_usable(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Ticks()
    await with_webhook(engine, box(KEY_B), "biz_old", "ws_old")  # under a key since removed
    await with_webhook(engine, box(KEY_A), "biz_new", "ws_new")
    cache = repo.SecretCache(lambda: engine, lambda: box(KEY_A), clock=clock)
    assert await cache.get("biz_new") == ["ws_new"] and await cache.get("biz_old") == []
    clock.now += repo.SecretCache.MAX_AGE
    assert await cache.get("biz_new") == ["ws_new"]
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == ["the webhook secret of biz_old cannot be decrypted with BRIDGE_SECRET_KEY"]  # once
    assert not any("ws_" in r.getMessage() for r in caplog.records)
