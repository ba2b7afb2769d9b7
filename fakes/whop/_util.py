"""Small helpers shared by the fake: timestamps, money, ids."""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

# Everything time-like is stored as integer epoch milliseconds: exact, sortable, and the
# ISO strings Whop sends carry millisecond precision ("2026-10-01T14:03:15.412Z").
TimeInput = datetime | str | int | float | None
MoneyInput = Decimal | str | int | float | None

TIME_FIELDS = frozenset(
    {
        "created_at",
        "updated_at",
        "joined_at",
        "canceled_at",
        "current_period_start",
        "current_period_end",
        "expires_at",
        "most_recent_action_at",
        "last_accessed_at",
        "paid_at",
        "last_payment_attempt_at",
        "next_payment_attempt_at",
        "dispute_alerted_at",
        "refunded_at",
    }
)
MONEY_FIELDS = frozenset(
    {
        "initial_price",
        "renewal_price",
        "subtotal",
        "total",
        "usd_total",
        "amount_after_fees",
        "refunded_amount",
        "tax_amount",
        "tax_refunded_amount",
        "usd_total_spent",
    }
)

# (charge decimals, display decimals). COP charges in cents but is shown without them.
_CURRENCY_DECIMALS: dict[str, tuple[int, int]] = {
    "jpy": (0, 0),
    "krw": (0, 0),
    "vnd": (0, 0),
    "clp": (0, 0),
    "cop": (2, 0),
}
_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£", "cad": "CA$", "aud": "A$"}
_ALPHABET = string.ascii_letters + string.digits


def to_ms(value: TimeInput) -> int | None:
    """Datetime, ISO string or epoch *seconds* → epoch milliseconds (naive values are UTC)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return round(value.timestamp() * 1000)
    return round(float(value) * 1000)


def iso(ms: int | None) -> str | None:
    """Epoch milliseconds → Whop's ISO 8601 form with milliseconds and a Z."""
    if ms is None:
        return None
    seconds, millis = divmod(ms, 1000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{millis:03d}Z"


def to_decimal(value: MoneyInput) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, float):
        return Decimal(repr(value))  # repr keeps 49.99 as 49.99, not its binary expansion
    return Decimal(value)


def currency_decimals(currency: str) -> tuple[int, int]:
    return _CURRENCY_DECIMALS.get(currency.lower(), (2, 2))


def quantize(amount: Decimal, currency: str) -> Decimal:
    decimals, _ = currency_decimals(currency)
    return amount.quantize(Decimal(1).scaleb(-decimals))


def money(amount: Decimal | None, currency: str) -> dict[str, Any] | None:
    """The native `Money` object: exact decimal string in major units."""
    if amount is None:
        return None
    decimals, display = currency_decimals(currency)
    return {
        "amount": str(quantize(amount, currency)),
        "currency": currency.lower(),
        "decimals": decimals,
        "display_decimals": display,
    }


def legacy_number(amount: Decimal | None) -> float | None:
    """Legacy shapes send money as JSON numbers in major units (that is the trap)."""
    return None if amount is None else float(amount)


def formatted(amount: Decimal | None, currency: str) -> str:
    amount = amount if amount is not None else Decimal(0)
    symbol = _SYMBOLS.get(currency.lower())
    text = f"{quantize(amount, currency):,}"
    return f"{symbol}{text}" if symbol else f"{text} {currency.upper()}"


def period_label(days: int | None) -> str:
    return {1: "day", 7: "week", 30: "month", 31: "month", 90: "3 months", 365: "year"}.get(days or 0, f"{days} days")


class IdFactory:
    """Random-looking but reproducible ids: the same rng seed gives the same ids."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def new(self, prefix: str, length: int = 14) -> str:
        return prefix + "".join(self.rng.choices(_ALPHABET, k=length))


def slugify(text: str) -> str:
    out = "".join(ch.lower() if ch.isalnum() else "-" for ch in text)
    while "--" in out:
        out = out.replace("--", "-")
    return out.strip("-")
