"""Business rules: boost or bury products by category, brand or price, and pin products to slots.

Written the same way in recsys.toml (`[rules]`), on the command line (`--boost`, `--pin`) and in a
request (`?boost=`, `?pin=`):

    boost = FIELD:VALUE:FACTOR   category:Women|Shoes:1.5  (a category path prefix)
                                 brand:Acme:2              (a brand)
                                 price:0-50:0.5            (a price range; 100- or -50 leave one side open)
    pin   = PRODUCT:SLOT         SKU-17:1                  (slot 1 is the top)

A factor multiplies an item's rank score, 1 / rank, over the candidates of a list, so a factor of
2 moves the 10th product to about the 5th place and 0.5 (a bury) the 3rd to about the 6th;
factors of several matching rules multiply. Rank scores make factors mean the same whichever
model produced the list (their scores are on different scales). A pinned product takes its slot
whenever the customer may be shown it (available, not hidden, not filtered out or excluded).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import InputError
from .limits import MAX_N

FIELDS = ("category", "brand", "price")


@dataclass(frozen=True)
class Boost:
    """Multiply the rank score of items whose `field` matches `value` by `factor`."""

    field: str
    value: str
    factor: float
    low: float = -math.inf
    high: float = math.inf

    def matches(self, item: dict) -> bool:
        """Whether a result item (with its catalog attributes) matches."""
        if self.field == "category":
            return str(item.get("category_path", "")).startswith(self.value)
        if self.field == "brand":
            return item.get("brand") == self.value
        price = item.get("price")
        return price is not None and self.low <= float(price) <= self.high

    def describe(self) -> str:
        return f"{self.field} {self.value}: x{self.factor:g}"


@dataclass(frozen=True)
class Pin:
    product_id: str
    slot: int  # 1-based


@dataclass(frozen=True)
class Rules:
    boosts: tuple[Boost, ...] = ()
    pins: tuple[Pin, ...] = ()

    def active(self) -> bool:
        return bool(self.boosts or self.pins)

    def merged(self, other: "Rules | None") -> "Rules":
        """These rules and `other` (a request's): boosts add up; a product pinned by both takes `other`'s slot."""
        if other is None or not other.active():
            return self
        theirs = {pin.product_id for pin in other.pins}
        mine = tuple(pin for pin in self.pins if pin.product_id not in theirs)
        return Rules(self.boosts + other.boosts, mine + other.pins)


NO_RULES = Rules()


def parse_rules(boosts: Sequence[str] = (), pins: Sequence[str] = (), *, where: str = "rules") -> Rules:
    """Rules from their text form; InputError naming `where` and the rule for anything malformed."""
    return Rules(tuple(_boost(text, where) for text in boosts), tuple(_pin(text, where) for text in pins))


def _boost(text: str, where: str) -> Boost:
    field, _, rest = str(text).partition(":")
    value, _, factor_text = rest.rpartition(":")
    usage = f"{where}: boost {str(text)[:80]!r} must be FIELD:VALUE:FACTOR with FIELD one of {', '.join(FIELDS)} (e.g. brand:Acme:2)"
    if field not in FIELDS or not value:
        raise InputError(usage)
    try:
        factor = float(factor_text)
    except ValueError:
        raise InputError(usage) from None
    if not (math.isfinite(factor) and factor > 0):
        raise InputError(f"{where}: boost {str(text)[:80]!r}: the factor must be a positive number (below 1 buries)")
    if field != "price":
        return Boost(field, value, factor)
    low_text, dash, high_text = value.partition("-")
    try:
        low = float(low_text) if low_text.strip() else -math.inf
        high = float(high_text) if high_text.strip() else math.inf
    except ValueError:
        low = high = math.nan
    if not dash or math.isnan(low) or math.isnan(high) or low > high:
        raise InputError(f"{where}: boost {str(text)[:80]!r}: a price range is LOW-HIGH, e.g. price:0-50:0.5 or price:100-:1.2")
    return Boost(field, value, factor, low, high)


def _pin(text: str, where: str) -> Pin:
    product_id, _, slot_text = str(text).rpartition(":")
    try:
        slot = int(slot_text)
    except ValueError:
        slot = 0
    if not product_id or not 1 <= slot <= MAX_N:
        raise InputError(f"{where}: pin {str(text)[:80]!r} must be PRODUCT:SLOT with SLOT from 1 to {MAX_N} (e.g. SKU-17:1)")
    return Pin(product_id, slot)


def apply_rules(items: list[dict], n: int, rules: Rules, pinned: dict[str, dict]) -> list[dict]:
    """The first `n` of `items` (a ranked list of result items) re-ranked by the boosts, then with
    each pinned product in its slot. `pinned` maps the pins the customer may be shown to their items."""
    scored = []
    for rank, item in enumerate(items, start=1):
        factor, reasons = 1.0, []
        for boost in rules.boosts:
            if boost.matches(item):
                factor *= boost.factor
                reasons.append(boost.describe())
        if reasons:
            item = {**item, "reason": f"{item['reason']} (shop rule {', '.join(reasons)})"}
        scored.append((-factor / rank, rank, item))
    ranked = [item for _, _, item in sorted(scored, key=lambda entry: entry[:2])]
    for pin in sorted(rules.pins, key=lambda pin: pin.slot):
        if pin.product_id not in pinned:
            continue
        ranked = [item for item in ranked if item["product_id"] != pin.product_id]
        ranked.insert(min(pin.slot, len(ranked) + 1) - 1, pinned[pin.product_id])
    return [{**item, "rank": rank} for rank, item in enumerate(ranked[:n], start=1)]
