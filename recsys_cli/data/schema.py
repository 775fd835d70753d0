"""The canonical data format every command reads."""

from __future__ import annotations

EVENT_TYPES: tuple[str, ...] = ("view_product", "add_to_cart", "purchase_item")
"""Event types, weakest to strongest. Their position is the code used inside the package."""

EVENT_CODE: dict[str, int] = {name: code for code, name in enumerate(EVENT_TYPES)}
VIEW, CART, PURCHASE = 0, 1, 2

EVENT_COLUMNS: tuple[str, ...] = ("customer_id", "product_id", "type", "timestamp")
EVENTS_GLOB = "events*.csv"
CATALOG_FILE = "catalog.csv"

CATALOG_REQUIRED: tuple[str, ...] = ("product_id",)
CATALOG_OPTIONAL: tuple[str, ...] = (
    "category_id",
    "category_path",
    "brand",
    "gender",
    "description",
    "price",
)
CATALOG_COLUMNS: tuple[str, ...] = CATALOG_REQUIRED + CATALOG_OPTIONAL
CATALOG_AVAILABLE = "available"
"""Optional catalog column: false keeps a product out of every list while its events still train."""
CATALOG_READ: tuple[str, ...] = CATALOG_COLUMNS + (CATALOG_AVAILABLE,)
AVAILABLE_WORDS: dict[str, bool] = {
    **dict.fromkeys(("true", "1", "yes", "y", "t"), True),
    **dict.fromkeys(("false", "0", "no", "n", "f"), False),
}
"""Values of `available` (case-insensitive); an empty cell means available."""

GENDERS: tuple[str, ...] = ("Man", "Woman", "Child", "Unisex", "Other")
CATEGORY_SEPARATOR = "|"
