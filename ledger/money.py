"""Money: integer amounts in minor units with an ISO 4217 currency; per-unit rates are Decimal.

``cost()`` is the one function that turns a rate times a quantity into minor units. It rounds
half to even (``ROUND_HALF_EVEN``, "banker's rounding"): unbiased over many settlements, and
monotonic, so a cost at a lower rate is never above the cost at a higher one (a hold computed at
the limit price always covers the charge at the clearing price). Floats are refused everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

ROUNDING = ROUND_HALF_EVEN

# ISO 4217 minor-unit exponents of the currencies the exchange settles in.
MINOR_UNIT_EXPONENT: dict[str, int] = {
    "CNY": 2,
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "HKD": 2,
    "SGD": 2,
    "JPY": 0,
    "KRW": 0,
}


class MoneyError(ValueError):
    """A value that cannot be money: a float, an unknown currency, a fraction of a minor unit."""


def exponent(currency: str) -> int:
    try:
        return MINOR_UNIT_EXPONENT[currency]
    except KeyError:
        raise MoneyError(f"unsupported currency {currency!r}") from None


def _decimal(value: Decimal | int, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise MoneyError(f"{name} must be a Decimal or an int, not {type(value).__name__}")
    result = Decimal(value)
    if not result.is_finite():
        raise MoneyError(f"{name} must be finite")
    return result


def cost(rate: Decimal | int, quantity: Decimal | int, currency: str) -> int:
    """``rate`` (major units per unit) × ``quantity`` (units), in minor units, rounded half-even."""
    exact = _decimal(rate, "rate") * _decimal(quantity, "quantity") * (10 ** exponent(currency))
    return int(exact.quantize(Decimal(1), rounding=ROUNDING))


def to_minor(amount: Decimal | int, currency: str) -> int:
    """An exact major-unit amount (e.g. Decimal("12.34") CNY) in minor units; refuses fractions."""
    exact = _decimal(amount, "amount") * (10 ** exponent(currency))
    if exact != exact.to_integral_value():
        raise MoneyError(f"{amount} {currency} is not a whole number of minor units")
    return int(exact)


def to_major(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-exponent(currency))


@dataclass(frozen=True, slots=True)
class Money:
    minor: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.minor, bool) or not isinstance(self.minor, int):
            raise MoneyError("Money.minor must be an int of minor units")
        exponent(self.currency)

    def __add__(self, other: Money) -> Money:
        if other.currency != self.currency:
            raise MoneyError(f"cannot add {other.currency} to {self.currency}")
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        return self + Money(-other.minor, other.currency)

    def __str__(self) -> str:
        return f"{to_major(self.minor, self.currency):.{exponent(self.currency)}f} {self.currency}"
