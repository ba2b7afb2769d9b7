"""Money as the bridge holds it: an exact amount in major units and a currency.

Apart from the Whop models so that the store and the mapping can hold money without depending on
the Whop client's models.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator


def to_decimal(value: Any) -> Decimal | None:
    """An exact Decimal from a decimal string or a JSON number; None when it is not a number."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int | float | str):
        # str() of a float gives its shortest repr ("49.99"), never the binary expansion.
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation:
            return None
    else:
        return None
    return result if result.is_finite() else None


# Twenty stores money as CURRENCY `amountMicros`, a 64-bit integer: nothing beyond this amount
# (in major units) can be written, so such an amount is refused where it is read.
MAX_AMOUNT = Decimal(2**63 - 1).scaleb(-6)


class Money(BaseModel):
    """An exact amount in major units (`Decimal("49.00")` = $49) and a lower-case ISO currency."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    amount: Decimal
    currency: str | None = None

    @field_validator("amount", mode="before")
    @classmethod
    def _exact_amount(cls, value: Any) -> Decimal:
        amount = to_decimal(value)
        if amount is None:
            raise ValueError("amount must be a finite decimal number")
        if abs(amount) > MAX_AMOUNT:
            raise ValueError(f"amount {amount:.3E} is beyond what Twenty can hold (at most {MAX_AMOUNT:,} either way)")
        return amount

    @field_validator("currency", mode="before")
    @classmethod
    def _lower_currency(cls, value: Any) -> str | None:
        if not isinstance(value, str) or not value.strip():
            return None
        return value.strip().lower()
