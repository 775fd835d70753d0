"""A synthetic sports-and-fashion store: a catalog and ~90 days of browsing events, in the canonical format.

`generate(out_dir, customers=..., products=..., events=..., seed=...)` writes `events.csv`
(customer_id, product_id, type, timestamp) and `catalog.csv` (product_id, category_id,
category_path, brand, gender, description, price). The same arguments and seed always give
byte-identical files. `PRESETS["seed"]` has the size of the store the toolkit was first built
for; `PRESETS["sample"]` is the small dataset committed under `data/`.

The generative model, in the order it runs:

Catalog
    A fixed taxonomy of 311 leaf categories under 39 subcategories and 5 top levels, three
    levels deep (`Women|Women's Footwear|Women's Ballerinas`, `Sports|Running|Running Shoes`,
    ...; 355 distinct path tokens). Each leaf gets a size weight (log-normal) times a weight for its
    top level; every leaf gets at least one product when there are enough products, the rest
    are drawn by those weights. Gender follows the path: Women -> Woman, Men -> Man,
    Kids -> Child, Home & Lifestyle -> Other; sports products are mostly Unisex, some Man or
    Woman. Brands (about one per 45 products) have a Zipf-like share of the catalog (a few big
    brands, a long tail of small ones); big brands sell everything, the others specialise in one
    kind of product (footwear, apparel, accessories, sport, lifestyle) and most products of a
    kind go to its specialists. Price is log-normal: a base price per leaf (footwear dearer than
    socks, kids' cheaper) times a per-brand premium times product noise, rounded to cents.
    Each product has a latent vector: its subcategory's vector + its leaf's + half its brand's +
    noise. Product popularity is Zipf-like, weight 1 / (rank + 25) ** 0.75 over a random order
    times log-normal noise (sigma 0.6), independent of everything else; the top 1% of products
    get about a fifth of all events. The description is a short text, mostly HTML (`<p>`, `<b>`),
    built from brand, leaf, gender, an adjective, a material suited to the kind and a colour.

Customers
    Each customer has a gender segment (Woman 48%, Man 32%, Child i.e. a parent 12%, Unisex 8%),
    1-3 favourite subcategories (second-level categories such as `Women's Footwear` or
    `Running`, drawn by popularity among those that suit the segment), 1-3 favourite brands (the
    brands of popular products in those subcategories), a price level (log-offset from a leaf's
    typical price), a latent taste vector (the mean of the favourite subcategories' vectors +
    noise), an activity weight (log-normal, sigma 1.68: most customers do little, a few a lot) and
    a buying propensity (log-normal).

Browsing
    Events are built from interactions: one customer looking at one product in one session.
    Each customer gets 1 + a share (by activity) of the interactions; a customer's interactions
    are split into sessions (each later interaction starts a new session with probability
    0.35). Each interaction draws its product from one source:
    a favourite subcategory (45%), a favourite brand (15%), the store's bestsellers (18%),
    the leaf of the previous interaction in the same session (12%, "more like this"), or a
    product the customer already interacted with (10%, a revisit). Except for revisits, six
    candidates are drawn from the source by popularity, and the customer picks one with
    probability proportional to exp(utility), where utility = taste . product vector / sqrt(8)
    + gender fit (own segment or Unisex fits, others do not) - price misfit (squared distance
    between the product's relative price and the customer's price level). Later sessions use the same
    preferences as earlier ones, so the past predicts the future.
    With `every_product_seen` (the seed preset: the original's products are those seen in its
    events), each product nobody picked takes over one interaction of another product of its leaf
    (else subcategory) that keeps at least one, so every product appears for any seed.

Event types
    There are about events / 1.43 interactions. Every interaction has one or more views (1 +
    a long-tailed share of the extra views). Exactly round(events * 7.06%) interactions get an add_to_cart, chosen without replacement
    with weight exp(utility) x buying propensity (x2 for revisits); exactly
    round(events * 2.30%) of the carted ones get a purchase_item, chosen the same way. Within
    an interaction the cart follows its views; purchases happen at the end of the session
    (checkout), after every cart of that session. The total event count is exact.

Time
    Sessions start at uniformly random times over 90 days from 2024-01-01 UTC, in order for each
    customer and never overlapping (a session lasts at most an hour); events inside a session
    are a few seconds to minutes apart. Rows are written sorted by timestamp.

Ids are digit strings: customers from 100000 up, products from 10000 up, categories from 1000 up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recsys_cli.data.schema import CATALOG_COLUMNS, CATALOG_FILE, CATEGORY_SEPARATOR, EVENT_COLUMNS, EVENT_TYPES
from recsys_cli.errors import InputError

EVENTS_FILE = "events.csv"

PRESETS: dict[str, dict[str, int | bool]] = {
    "seed": {"customers": 83762, "products": 28369, "events": 653419, "every_product_seen": True},
    "sample": {"customers": 2000, "products": 1500, "events": 30000},
}
"""Named sizes. The original store's 28,369 products are the products seen in its events, so the
seed preset gives every product at least one interaction (whatever the --seed)."""

MAX_EVENTS = 50_000_000
"""Sizes above this would need tens of GB of memory; nobody needs a synthetic store that large."""

START_TIMESTAMP = 1704067200  # 2024-01-01T00:00:00Z
SPAN_SECONDS = 90 * 86400
MAX_SESSION_SECONDS = 3600

CART_SHARE = 46121 / 653419
PURCHASE_SHARE = 14999 / 653419
VIEWS_PER_INTERACTION = 1.43
VIEW_DISPERSION = 0.5
NEW_SESSION_PROB = 0.35
ACTIVITY_SIGMA = 1.68
POPULARITY_EXPONENT = 0.75
POPULARITY_OFFSET = 25.0
POPULARITY_NOISE = 0.6
BRAND_EXPONENT = 1.0
BRAND_OFFSET = 3.0
N_CANDIDATES = 6
LATENT_DIM = 8

SEGMENTS: tuple[str, ...] = ("Woman", "Man", "Child", "Unisex")
SEGMENT_PROBS = (0.48, 0.32, 0.12, 0.08)

# Interaction sources: favourite subcategory, favourite brand, bestsellers, same leaf as the
# previous interaction in the session, revisit of an earlier product.
FAVOURITE, BRAND, POPULAR, SIMILAR, REVISIT = range(5)
SOURCE_PROBS = (0.45, 0.15, 0.18, 0.12, 0.10)

KINDS: tuple[str, ...] = ("footwear", "apparel", "accessories", "sport", "lifestyle")

# fmt: off
# Top level: (name, gender, possessive used in subcategory and leaf names, catalog weight).
_GENDERED_TOPS = (("Women", "Woman", "Women's", 0.30), ("Men", "Man", "Men's", 0.24), ("Kids", "Child", "Kids'", 0.12))
# Subcategory suffix, kind, log base price, leaves; a leaf starting with "W:", "M:" or "K:"
# exists only under Women, Men or Kids.
_GENDERED_SUBS = (
    ("Footwear", "footwear", 4.2, ("Sneakers", "Running Shoes", "Boots", "Sandals", "W:Ballerinas", "W:Heels",
                                   "M:Loafers", "Slippers", "Hiking Shoes", "Flip-Flops", "K:First Shoes", "Court Shoes",
                                   "Walking Shoes", "Clogs", "W:Espadrilles", "M:Chelsea Boots", "K:Wellies")),
    ("Clothing", "apparel", 3.6, ("T-Shirts", "Shirts", "Sweatshirts", "Hoodies", "Jackets", "Coats", "Jeans",
                                  "Trousers", "Shorts", "W:Dresses", "W:Skirts", "Knitwear", "M:Polo Shirts", "Vests",
                                  "Cardigans", "Gilets", "Parkas", "W:Blouses", "M:Chinos", "K:Overalls")),
    ("Sportswear", "apparel", 3.7, ("Training Tops", "Training Shorts", "Tracksuits", "W:Sports Bras",
                                    "Leggings", "Base Layers", "Sports Jackets", "Running Tops", "Track Jackets",
                                    "Compression Wear", "W:Yoga Pants")),
    ("Underwear & Socks", "apparel", 2.7, ("Socks", "W:Bras", "Briefs", "M:Boxers", "Pyjamas", "Thermal Underwear", "Loungewear",
                                                 "W:Tights")),
    ("Swimwear", "apparel", 3.4, ("Swimsuits", "W:Bikinis", "Swim Shorts", "Rash Guards", "W:Beach Cover-Ups", "M:Swim Trunks")),
    ("Accessories", "accessories", 3.1, ("Caps", "Beanies", "Gloves", "Scarves", "Belts", "Sunglasses",
                                         "Watches", "Wallets", "Headbands", "Umbrellas", "W:Jewellery", "M:Ties",
                                         "K:Hair Accessories")),
    ("Bags", "accessories", 3.6, ("Backpacks", "Gym Bags", "W:Handbags", "Shoulder Bags", "Waist Bags", "Tote Bags", "Luggage")),
)
_SPORTS = (
    ("Running", 3.9, ("Running Shoes", "Running Jackets", "Running Tights", "Running Watches", "Hydration Packs",
                      "Reflective Gear", "Running Socks", "Trail Shoes", "Running Belts")),
    ("Football", 3.7, ("Football Boots", "Footballs", "Goalkeeper Gloves", "Shin Guards", "Football Shirts",
                       "Training Cones", "Football Socks", "Goalposts")),
    ("Basketball", 3.8, ("Basketball Shoes", "Basketballs", "Basketball Jerseys", "Hoops", "Basketball Shorts",
                        "Basketball Socks")),
    ("Tennis", 3.8, ("Tennis Rackets", "Tennis Balls", "Tennis Shoes", "Racket Bags", "Strings & Grips",
                     "Tennis Dresses", "Tennis Shorts")),
    ("Outdoor", 4.1, ("Tents", "Sleeping Bags", "Hiking Backpacks", "Trekking Poles", "Headlamps",
                      "Outdoor Jackets", "Camping Cookware", "Hiking Boots", "Compasses")),
    ("Cycling", 4.2, ("Bikes", "Helmets", "Cycling Jerseys", "Cycling Shorts", "Bike Lights", "Bike Locks",
                      "Cycling Shoes", "Bike Pumps", "Bike Bags")),
    ("Fitness", 3.5, ("Dumbbells", "Yoga Mats", "Resistance Bands", "Kettlebells", "Jump Ropes", "Foam Rollers",
                      "Fitness Trackers", "Weight Benches", "Pull-Up Bars")),
    ("Swimming", 3.2, ("Goggles", "Swim Caps", "Fins", "Kickboards", "Competition Swimsuits")),
    ("Winter Sports", 4.4, ("Skis", "Snowboards", "Ski Boots", "Ski Goggles", "Ski Jackets", "Ski Gloves",
                            "Thermal Base Layers", "Sledges")),
    ("Combat Sports", 3.6, ("Boxing Gloves", "Punching Bags", "Hand Wraps", "Martial Arts Uniforms",
                            "Mouth Guards", "Headguards")),
    ("Golf", 4.3, ("Golf Clubs", "Golf Balls", "Golf Bags", "Golf Gloves", "Golf Shoes", "Golf Umbrellas")),
    ("Climbing", 3.9, ("Climbing Shoes", "Harnesses", "Chalk Bags", "Carabiners", "Climbing Ropes")),
    ("Skateboarding", 3.8, ("Skateboards", "Skate Shoes", "Protective Pads", "Skate Wheels")),
    ("Water Sports", 4.2, ("Wetsuits", "Paddle Boards", "Life Jackets", "Surfboards", "Dry Bags")),
)
_SPORTS_WEIGHT = 0.28
_LIFESTYLE = (
    ("Gifts", 3.0, ("Gift Cards", "Gift Sets", "Mugs", "Posters", "Keyrings")),
    ("Care", 2.5, ("Shoe Care", "Sports Nutrition", "Skin Care", "Water Bottles", "Towels")),
    ("Electronics", 4.0, ("Headphones", "Smartwatches", "Action Cameras", "Speakers", "Phone Cases")),
    ("Books & Media", 2.8, ("Training Books", "Magazines", "Sports Biographies", "Board Games")),
)
_LIFESTYLE_WEIGHT = 0.06

# How much each segment likes each top level (Women, Men, Kids, Sports, Home & Lifestyle).
_SEGMENT_TOP_AFFINITY = np.array(
    [
        [1.0, 0.03, 0.06, 0.35, 0.08],  # Woman
        [0.03, 1.0, 0.04, 0.55, 0.08],  # Man
        [0.12, 0.08, 1.0, 0.25, 0.05],  # Child (parents)
        [0.25, 0.25, 0.08, 1.0, 0.3],  # Unisex
    ]
)
# Utility bonus of a product's gender (columns: GENDERS order Man, Woman, Child, Unisex, Other)
# for each segment (rows: SEGMENTS order).
_GENDER_FIT = np.array(
    [
        [-2.5, 0.0, -1.5, -0.2, -0.4],  # Woman
        [0.0, -2.5, -1.5, -0.2, -0.4],  # Man
        [-1.2, -1.2, 0.0, -0.3, -0.5],  # Child
        [-0.6, -0.6, -1.0, 0.0, -0.2],  # Unisex
    ],
    dtype=np.float32,
)
_PRODUCT_GENDERS = ("Man", "Woman", "Child", "Unisex", "Other")

_SYLLABLES = np.array(
    ["al", "bar", "cor", "dan", "el", "fen", "gal", "hol", "ir", "jun", "kal", "lor", "mar", "nor", "or", "pel",
     "quin", "ros", "sol", "tar", "ul", "vor", "wen", "xan", "yor", "zed", "tri", "ka", "mo", "ve", "sta", "lu"]
)
_BRAND_SUFFIXES = np.array(["", "", "", "", " Sport", " Athletics", " Outdoor", "wear", " Co.", " Active"])
_COLOURS = np.array(["black", "white", "navy", "grey", "red", "olive", "beige", "blue", "pink", "green", "yellow",
                     "burgundy", "sand", "teal"])
_MATERIALS = np.array(  # one row per kind, KINDS order
    [
        ["leather", "suede", "mesh", "knit", "canvas"],
        ["cotton", "recycled polyester", "merino wool", "fleece", "organic cotton"],
        ["leather", "nylon", "canvas", "recycled polyester", "stainless steel"],
        ["aluminium", "rubber", "nylon", "carbon fibre", "technical fabric"],
        ["ceramic", "recycled paper", "bamboo", "cotton", "recycled plastic"],
    ]
)
_ADJECTIVES = np.array(["Lightweight", "Durable", "Classic", "Versatile", "Premium", "Essential", "Everyday",
                        "Performance", "Comfortable", "Iconic"])
_GENDER_PHRASE = {"Man": "for men", "Woman": "for women", "Child": "for kids", "Unisex": "for everyone",
                  "Other": "for every home"}
# fmt: on


@dataclass(frozen=True)
class GenerateSummary:
    """What `generate` wrote: counts of events, customers in events, catalog products, events
    per type, distinct customer-product pairs; wall-clock seconds; paths of the written files."""

    events: int
    customers: int
    products: int
    by_type: dict[str, int]
    pairs: int
    seconds: float
    files: list[str]


def generate(
    out_dir: Path,
    *,
    customers: int,
    products: int,
    events: int,
    seed: int = 42,
    every_product_seen: bool = False,
    progress: Callable[[str], None] | None = None,
) -> GenerateSummary:
    """Write out_dir/events.csv and out_dir/catalog.csv for a synthetic store (see the module docstring).

    Every customer appears in the events, the event total is exactly `events`, and the same
    arguments give byte-identical files. With `every_product_seen`, every product appears too
    (when there are at least as many interactions as products). Raises InputError for sizes
    that make no sense.
    """
    _check_sizes(customers=customers, products=products, events=events, seed=seed)
    started = time.perf_counter()
    say = progress or (lambda _message: None)
    rng = np.random.default_rng(seed)

    say("catalog")
    catalog = _make_catalog(rng, products)
    say("customers")
    people = _make_customers(rng, customers, catalog)
    say("events")
    ev = _make_events(rng, events, people, catalog, every_product_seen=every_product_seen)

    say("writing")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    events_path, catalog_path = out_dir / EVENTS_FILE, out_dir / CATALOG_FILE
    _write_events(events_path, ev, people.ids, catalog.ids)
    _write_catalog(catalog_path, catalog)

    pair_keys = ev.customer.astype(np.int64) * products + ev.product
    counts = np.bincount(ev.type, minlength=len(EVENT_TYPES))
    return GenerateSummary(
        events=int(ev.customer.size),
        customers=int(np.unique(ev.customer).size),
        products=products,
        by_type={name: int(counts[code]) for code, name in enumerate(EVENT_TYPES)},
        pairs=int(np.unique(pair_keys).size),
        seconds=round(time.perf_counter() - started, 3),
        files=[str(events_path), str(catalog_path)],
    )


def _check_sizes(*, customers: int, products: int, events: int, seed: int) -> None:
    for name, value in (("customers", customers), ("products", products), ("events", events), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise InputError(f"{name} must be a whole number, got {value!r}")
    for name, value in (("customers", customers), ("products", products), ("events", events)):
        if value <= 0:
            raise InputError(f"{name} must be positive, got {value}")
    if seed < 0:
        raise InputError(f"seed must be zero or positive, got {seed}")
    if events < customers:
        raise InputError(f"events ({events}) must be at least customers ({customers}): every customer has at least one event")
    if events > MAX_EVENTS:
        raise InputError(f"events ({events}) is above the limit of {MAX_EVENTS:,}; generate a smaller store")


# ---------------------------------------------------------------------------------------------
# Sampling helper


class _GroupSampler:
    """Draws members of many groups at once, each with probability proportional to its weight."""

    def __init__(self, group_of_member: np.ndarray, weight: np.ndarray, n_groups: int) -> None:
        order = np.argsort(group_of_member, kind="stable")
        self.members = order
        self.cum = np.cumsum(weight[order].astype(np.float64))
        sizes = np.bincount(group_of_member, minlength=n_groups)
        ends = np.cumsum(sizes)  # one past each group's last position
        starts = ends - sizes
        self.low = np.where(starts > 0, self.cum[np.maximum(starts - 1, 0)], 0.0)
        self.high = np.where(sizes > 0, self.cum[np.maximum(ends - 1, 0)], self.low)
        self.last = np.maximum(ends - 1, 0)
        self.nonempty = self.high > self.low

    def draw(self, rng: np.random.Generator, groups: np.ndarray) -> np.ndarray:
        """One member per entry of `groups`; every drawn group must have positive total weight."""
        r = self.low[groups] + rng.random(groups.shape) * (self.high[groups] - self.low[groups])
        pos = np.minimum(np.searchsorted(self.cum, r, side="right"), self.last[groups])
        return self.members[pos]


def _top_k_weighted(rng: np.random.Generator, weight: np.ndarray, k: int) -> np.ndarray:
    """Indices of k items drawn without replacement with probability proportional to weight (Gumbel top-k)."""
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    keys = np.log(weight) + rng.gumbel(size=weight.size)
    if k >= weight.size:
        return np.arange(weight.size)
    return np.sort(np.argpartition(-keys, k - 1)[:k])


# ---------------------------------------------------------------------------------------------
# Catalog


@dataclass
class _Catalog:
    ids: np.ndarray  # int64 external ids, ascending
    leaf: np.ndarray  # leaf index per product
    sub: np.ndarray  # subcategory index per product
    gender: np.ndarray  # index into _PRODUCT_GENDERS
    brand: np.ndarray  # brand index
    rel_price: np.ndarray  # log price minus the leaf's base log price
    popularity: np.ndarray  # Zipf-like weight
    vec: np.ndarray  # (products, LATENT_DIM) float32
    leaves: pd.DataFrame  # taxonomy: path, top, sub, kind, base_log_price, gender
    sub_vec: np.ndarray
    brand_names: np.ndarray
    frame: pd.DataFrame  # what is written


def _taxonomy() -> pd.DataFrame:
    """One row per leaf category: path, top index, subcategory index, kind, base log price, gender, weight."""
    rows: list[tuple] = []
    subs: list[str] = []
    prefix_for = {"W": "Women", "M": "Men", "K": "Kids"}
    for top_i, (top, gender, poss, top_w) in enumerate(_GENDERED_TOPS):
        for sub_name, kind, log_price, leaves in _GENDERED_SUBS:
            sub_label = f"{poss} {sub_name}"
            subs.append(sub_label)
            for leaf in leaves:
                if ":" in leaf:
                    only, leaf = leaf.split(":", 1)
                    if prefix_for[only] != top:
                        continue
                kids = -0.35 if top == "Kids" else 0.0
                path = CATEGORY_SEPARATOR.join((top, sub_label, f"{poss} {leaf}"))
                rows.append((path, top_i, len(subs) - 1, kind, log_price + kids, gender, top_w))
    for sub_name, log_price, leaves in _SPORTS:
        subs.append(sub_name)
        for leaf in leaves:
            kind = "footwear" if leaf.endswith(("Shoes", "Boots")) else "sport"
            path = CATEGORY_SEPARATOR.join(("Sports", sub_name, leaf))
            rows.append((path, 3, len(subs) - 1, kind, log_price, "Unisex", _SPORTS_WEIGHT))
    for sub_name, log_price, leaves in _LIFESTYLE:
        subs.append(sub_name)
        for leaf in leaves:
            path = CATEGORY_SEPARATOR.join(("Home & Lifestyle", sub_name, leaf))
            rows.append((path, 4, len(subs) - 1, "lifestyle", log_price, "Other", _LIFESTYLE_WEIGHT))
    frame = pd.DataFrame(rows, columns=["path", "top", "sub", "kind", "base_log_price", "gender", "top_weight"])
    frame["kind"] = frame["kind"].map({k: i for i, k in enumerate(KINDS)})
    frame["leaf_name"] = frame["path"].str.rsplit(CATEGORY_SEPARATOR, n=1).str[-1]
    frame.attrs["subs"] = subs
    return frame


def _brand_names(rng: np.random.Generator, n: int) -> np.ndarray:
    names: np.ndarray = np.array([], dtype=str)
    while names.size < n:
        m = 3 * n + 50
        n_syll = rng.integers(2, 4, size=m)
        parts = rng.choice(_SYLLABLES, size=(m, 3))
        stem = np.char.add(parts[:, 0], parts[:, 1])
        stem = np.where(n_syll == 3, np.char.add(stem, parts[:, 2]), stem)
        stem = np.char.capitalize(stem)
        full = np.char.add(stem, rng.choice(_BRAND_SUFFIXES, size=m))
        _, first = np.unique(full, return_index=True)
        names = full[np.sort(first)]
    return names[:n]


def _make_catalog(rng: np.random.Generator, n: int) -> _Catalog:
    leaves = _taxonomy()
    n_leaves = len(leaves)
    n_subs = len(leaves.attrs["subs"])
    leaf_weight = leaves["top_weight"].to_numpy() * rng.lognormal(0.0, 0.6, n_leaves)
    leaf_weight /= leaf_weight.sum()
    if n >= n_leaves:
        leaf = np.concatenate([np.arange(n_leaves), rng.choice(n_leaves, n - n_leaves, p=leaf_weight)])
    else:
        leaf = rng.choice(n_leaves, n, p=leaf_weight)
    leaf = rng.permutation(leaf)
    sub = leaves["sub"].to_numpy()[leaf]
    kind = leaves["kind"].to_numpy()[leaf]

    gender_name = leaves["gender"].to_numpy()[leaf].copy()
    sporty = gender_name == "Unisex"
    roll = rng.random(n)
    gender_name[sporty & (roll < 0.2)] = "Man"
    gender_name[sporty & (roll >= 0.2) & (roll < 0.4)] = "Woman"
    gender = pd.Index(_PRODUCT_GENDERS).get_indexer(gender_name)

    # Brands: Zipf-like share; the ten biggest sell every kind, the others specialise.
    n_brands = int(np.clip(round(n / 45), 3, 2000))
    brand_names = _brand_names(rng, n_brands)
    brand_size = 1.0 / (np.arange(n_brands) + BRAND_OFFSET) ** BRAND_EXPONENT
    brand_kind = rng.integers(0, len(KINDS), n_brands)
    broad = np.arange(n_brands) < min(10, max(1, n_brands // 10))
    spec_member = np.concatenate([np.flatnonzero(~broad)] + [np.flatnonzero(broad)] * len(KINDS))
    spec_group = np.concatenate([brand_kind[~broad]] + [np.full(broad.sum(), k) for k in range(len(KINDS))])
    specialists = _GroupSampler(spec_group, brand_size[spec_member], len(KINDS))
    everyone = _GroupSampler(np.zeros(n_brands, dtype=np.int64), brand_size, 1)
    from_specialist = rng.random(n) < 0.7
    brand = np.where(
        from_specialist & specialists.nonempty[kind],
        spec_member[specialists.draw(rng, kind)],
        everyone.draw(rng, np.zeros(n, dtype=np.int64)),
    )

    brand_premium = rng.normal(0.0, 0.3, n_brands)
    rel_price = brand_premium[brand] + rng.normal(0.0, 0.3, n)
    leaf_price = leaves["base_log_price"].to_numpy() + rng.normal(0.0, 0.25, n_leaves)
    price = np.maximum(np.round(np.exp(leaf_price[leaf] + rel_price), 2), 0.5)
    # Shop prices end in .99 or .95 most of the time.
    ending = rng.random(n)
    whole = np.floor(price)
    price = np.where((whole >= 2) & (ending < 0.6), whole - 0.01, np.where((whole >= 2) & (ending < 0.8), whole - 0.05, price))

    sub_vec = rng.normal(0.0, 1.0, (n_subs, LATENT_DIM))
    leaf_vec = sub_vec[leaves["sub"].to_numpy()] + rng.normal(0.0, 0.6, (n_leaves, LATENT_DIM))
    brand_vec = rng.normal(0.0, 0.7, (n_brands, LATENT_DIM))
    vec = (leaf_vec[leaf] + 0.5 * brand_vec[brand] + rng.normal(0.0, 0.5, (n, LATENT_DIM))).astype(np.float32)

    popularity = np.empty(n)
    popularity[rng.permutation(n)] = 1.0 / (np.arange(n) + POPULARITY_OFFSET) ** POPULARITY_EXPONENT
    popularity *= rng.lognormal(0.0, POPULARITY_NOISE, n)

    span = max(90_000, 3 * n)
    ids = np.sort(rng.choice(span, size=n, replace=False)).astype(np.int64) + 10_000

    frame = _catalog_frame(rng, ids, leaf, kind, leaves, brand_names[brand], gender_name, price)
    return _Catalog(ids, leaf, sub, gender, brand, rel_price, popularity, vec, leaves, sub_vec, brand_names, frame)


def _catalog_frame(
    rng: np.random.Generator,
    ids: np.ndarray,
    leaf: np.ndarray,
    kind: np.ndarray,
    leaves: pd.DataFrame,
    brand: np.ndarray,
    gender: np.ndarray,
    price: np.ndarray,
) -> pd.DataFrame:
    n = ids.size
    leaf_name = leaves["leaf_name"].to_numpy()[leaf].astype(str)
    colour = rng.choice(_COLOURS, n)
    material = _MATERIALS[kind, rng.integers(0, _MATERIALS.shape[1], n)]
    adjective = rng.choice(_ADJECTIVES, n)
    bold_brand = rng.random(n) < 0.5
    # Leaves under Women/Men/Kids already name who they are for.
    phrase = pd.Series(gender).map(_GENDER_PHRASE).to_numpy().astype(str)
    phrase = np.where(np.char.find(leaf_name, "'") >= 0, "", np.char.add(" ", phrase))
    brand_text = np.where(bold_brand, np.char.add(np.char.add("<b>", brand), "</b>"), brand)
    first = pd.Series(brand_text) + " " + leaf_name + phrase + "."
    second = pd.Series(adjective) + " " + material + " in " + colour + "."
    description = np.where(rng.random(n) < 0.7, "<p>" + first + "</p><p>" + second + "</p>", first + " " + second)
    return pd.DataFrame(
        {
            "product_id": ids,
            "category_id": leaf + 1000,
            "category_path": leaves["path"].to_numpy()[leaf],
            "brand": brand,
            "gender": gender,
            "description": description,
            "price": price,
        },
        columns=list(CATALOG_COLUMNS),
    )


# ---------------------------------------------------------------------------------------------
# Customers


@dataclass
class _Customers:
    ids: np.ndarray
    segment: np.ndarray
    fav_sub: np.ndarray  # (n, 3) subcategory indices; only the first n_fav_sub are favourites
    n_fav_sub: np.ndarray
    fav_brand: np.ndarray  # (n, 3)
    n_fav_brand: np.ndarray
    price_level: np.ndarray
    taste: np.ndarray  # (n, LATENT_DIM) float32
    activity: np.ndarray
    propensity: np.ndarray


def _make_customers(rng: np.random.Generator, n: int, cat: _Catalog) -> _Customers:
    n_subs = cat.sub_vec.shape[0]
    segment = rng.choice(len(SEGMENTS), n, p=SEGMENT_PROBS)

    # Favourite subcategories: by catalog popularity, times how well the top level suits the segment.
    sub_pop = np.bincount(cat.sub, weights=cat.popularity, minlength=n_subs)
    sub_top = cat.leaves.groupby("sub")["top"].first().reindex(range(n_subs)).to_numpy()
    seg_sub_weight = _SEGMENT_TOP_AFFINITY[:, sub_top] * sub_pop[None, :]  # (segments, subs)
    fav_sampler = _GroupSampler(np.repeat(np.arange(len(SEGMENTS)), n_subs), seg_sub_weight.ravel(), len(SEGMENTS))
    fav_sub = fav_sampler.draw(rng, np.repeat(segment, 3)).reshape(n, 3) % n_subs
    n_fav_sub = rng.choice([1, 2, 3], n, p=[0.4, 0.35, 0.25])

    # Favourite brands: the brands of popular products in the favourite subcategories.
    in_sub = _GroupSampler(cat.sub, cat.popularity, n_subs)
    fav_brand = cat.brand[in_sub.draw(rng, fav_sub.ravel())].reshape(n, 3)
    n_fav_brand = rng.choice([1, 2, 3], n, p=[0.5, 0.3, 0.2])

    active = np.arange(3)[None, :] < n_fav_sub[:, None]
    taste = (cat.sub_vec[fav_sub] * active[:, :, None]).sum(axis=1) / n_fav_sub[:, None]
    taste = (taste + rng.normal(0.0, 0.6, (n, LATENT_DIM))).astype(np.float32)

    ids = np.sort(rng.choice(max(900_000, 3 * n), size=n, replace=False)).astype(np.int64) + 100_000
    return _Customers(
        ids=ids,
        segment=segment,
        fav_sub=fav_sub,
        n_fav_sub=n_fav_sub,
        fav_brand=fav_brand,
        n_fav_brand=n_fav_brand,
        price_level=rng.normal(0.0, 0.35, n),
        taste=taste,
        activity=rng.lognormal(0.0, ACTIVITY_SIGMA, n),
        propensity=rng.lognormal(0.0, 0.8, n),
    )


# ---------------------------------------------------------------------------------------------
# Events


@dataclass
class _Events:
    customer: np.ndarray  # customer index
    product: np.ndarray  # product index
    type: np.ndarray  # event code
    timestamp: np.ndarray  # unix seconds


def _utility(people: _Customers, cat: _Catalog, cust: np.ndarray, prod: np.ndarray) -> np.ndarray:
    """Utility of products `prod` (shape (m, k)) for customers `cust` (shape (m,)), in chunks to bound memory."""
    out = np.empty(prod.shape, dtype=np.float32)
    step = 100_000
    for lo in range(0, cust.size, step):
        c, p = cust[lo : lo + step], prod[lo : lo + step]
        taste = np.einsum("md,mkd->mk", people.taste[c], cat.vec[p]) / np.float32(np.sqrt(LATENT_DIM))
        fit = _GENDER_FIT[people.segment[c][:, None], cat.gender[p]]
        misfit = (cat.rel_price[p] - people.price_level[c][:, None]) ** 2
        out[lo : lo + step] = taste + fit - misfit.astype(np.float32)
    return out


def _choose(rng: np.random.Generator, people: _Customers, cat: _Catalog, cust: np.ndarray, cand: np.ndarray):
    """Pick one candidate per row with probability proportional to exp(utility); returns (product, utility)."""
    util = _utility(people, cat, cust, cand)
    pick = np.argmax(util + rng.gumbel(size=util.shape).astype(np.float32), axis=1)
    rows = np.arange(cand.shape[0])
    return cand[rows, pick], util[rows, pick]


def _make_events(
    rng: np.random.Generator, n_events: int, people: _Customers, cat: _Catalog, *, every_product_seen: bool = False
) -> _Events:
    n_cust, n_prod = people.ids.size, cat.ids.size
    n_cart = int(round(n_events * CART_SHARE))
    n_purchase = int(round(n_events * PURCHASE_SHARE))
    spare = n_events - n_cust  # events beyond one view per customer
    if n_cart + n_purchase > spare:
        n_cart = spare * n_cart // max(n_cart + n_purchase, 1)
        n_purchase = min(spare - n_cart, n_cart)
    n_views = n_events - n_cart - n_purchase
    n_units = int(np.clip(round(n_views / VIEWS_PER_INTERACTION), n_cust, n_views))
    n_cart = min(n_cart, n_units)

    # Interactions per customer: one each, the rest by activity.
    extra = rng.choice(n_cust, n_units - n_cust, p=people.activity / people.activity.sum())
    per_cust = 1 + np.bincount(extra, minlength=n_cust)
    cust = np.repeat(np.arange(n_cust), per_cust)
    first_unit = np.cumsum(per_cust) - per_cust
    rank = np.arange(n_units) - first_unit[cust]
    new_session = (rank == 0) | (rng.random(n_units) < NEW_SESSION_PROB)
    session = np.cumsum(new_session) - 1

    source = rng.choice(len(SOURCE_PROBS), n_units, p=SOURCE_PROBS)
    source[(source == REVISIT) & (rank == 0)] = FAVOURITE
    source[(source == SIMILAR) & new_session] = FAVOURITE
    product = np.full(n_units, -1, dtype=np.int64)
    utility = np.zeros(n_units, dtype=np.float32)

    def fill(units: np.ndarray, sampler: _GroupSampler, groups: np.ndarray) -> None:
        cand = sampler.draw(rng, np.repeat(groups, N_CANDIDATES)).reshape(-1, N_CANDIDATES)
        product[units], utility[units] = _choose(rng, people, cat, cust[units], cand)

    slot = (rng.random(n_units) * people.n_fav_sub[cust]).astype(np.int64)
    units = np.flatnonzero(source == FAVOURITE)
    fill(units, _GroupSampler(cat.sub, cat.popularity, cat.sub_vec.shape[0]), people.fav_sub[cust[units], slot[units]])

    n_brands = cat.brand_names.size
    slot = (rng.random(n_units) * people.n_fav_brand[cust]).astype(np.int64)
    units = np.flatnonzero(source == BRAND)
    fill(units, _GroupSampler(cat.brand, cat.popularity, n_brands), people.fav_brand[cust[units], slot[units]])

    units = np.flatnonzero(source == POPULAR)
    fill(units, _GroupSampler(np.zeros(n_prod, dtype=np.int64), cat.popularity, 1), np.zeros(units.size, np.int64))

    # Revisits copy an earlier interaction's product; "more like this" browses the previous
    # interaction's leaf. Both point backwards, so resolve in rounds until nothing is pending.
    revisit_of = first_unit[cust] + (rng.random(n_units) * np.maximum(rank, 1)).astype(np.int64)
    in_leaf = _GroupSampler(cat.leaf, cat.popularity, len(cat.leaves))
    pending = np.flatnonzero(product < 0)
    while pending.size:
        rev = pending[(source[pending] == REVISIT) & (product[revisit_of[pending]] >= 0)]
        product[rev] = product[revisit_of[rev]]
        utility[rev] = _utility(people, cat, cust[rev], product[rev][:, None])[:, 0]
        sim = pending[(source[pending] == SIMILAR) & (product[pending - 1] >= 0)]
        if sim.size:
            fill(sim, in_leaf, cat.leaf[product[sim - 1]])
        pending = pending[product[pending] < 0]
    if every_product_seen:
        _see_every_product(rng, product, utility, source, cust, people, cat)

    # Views: one per interaction plus a long-tailed share of the rest. Carts and purchases: exact counts.
    view_weight = rng.gamma(VIEW_DISPERSION, size=n_units) + 1e-12
    n_view = 1 + np.bincount(rng.choice(n_units, n_views - n_units, p=view_weight / view_weight.sum()), minlength=n_units)
    intent = np.exp(utility.astype(np.float64)) * people.propensity[cust]
    intent *= np.where(source == REVISIT, 2.0, 1.0)
    carted = np.zeros(n_units, dtype=bool)
    carted[_top_k_weighted(rng, intent, n_cart)] = True
    bought = np.zeros(n_units, dtype=bool)
    cart_units = np.flatnonzero(carted)
    bought[cart_units[_top_k_weighted(rng, intent[cart_units], min(n_purchase, cart_units.size))]] = True

    # Explode interactions into events: views, then the cart; purchases move to the session's end.
    per_unit = n_view + carted + bought
    unit = np.repeat(np.arange(n_units), per_unit)
    offset = np.arange(unit.size) - np.repeat(np.cumsum(per_unit) - per_unit, per_unit)
    etype = np.where(offset < n_view[unit], 0, np.where(offset == n_view[unit], 1, 2)).astype(np.int8)
    order = np.lexsort((np.arange(unit.size), etype == 2, session[unit]))
    unit, etype = unit[order], etype[order]
    esession = session[unit]

    timestamp = _timestamps(rng, esession, cust[new_session], n_cust)
    return _Events(cust[unit], product[unit], etype, timestamp)


def _see_every_product(
    rng: np.random.Generator,
    product: np.ndarray,
    utility: np.ndarray,
    source: np.ndarray,
    cust: np.ndarray,
    people: _Customers,
    cat: _Catalog,
) -> None:
    """Point one interaction at each product nobody interacted with, in place.

    The interaction is taken from another product of the same leaf (else the same subcategory)
    that keeps at least one interaction: one random non-revisit interaction per donor product, so
    popular products barely change and no product loses its last interaction.
    """
    counts = np.bincount(product, minlength=cat.ids.size)
    missing = np.flatnonzero(counts == 0)
    if not missing.size:
        return
    shuffled = rng.permutation(product.size)
    shuffled = shuffled[(counts[product[shuffled]] >= 2) & (source[shuffled] != REVISIT)]
    _, first = np.unique(product[shuffled], return_index=True)
    donors = shuffled[np.sort(first)]  # one random interaction per donor product, in random order
    for group in (cat.leaf, cat.sub):
        if not (missing.size and donors.size):
            break
        want, have = _rank_within(group[missing]), _rank_within(group[product[donors]])
        # pair the r-th missing product of a group with the r-th donor of the same group
        want_key = group[missing].astype(np.int64) * product.size + want
        have_key = group[product[donors]].astype(np.int64) * product.size + have
        matched, i, j = np.intersect1d(want_key, have_key, assume_unique=True, return_indices=True)
        units = donors[j]
        product[units] = missing[i]
        utility[units] = _utility(people, cat, cust[units], missing[i][:, None])[:, 0]
        missing = np.delete(missing, i)
        donors = np.delete(donors, j)


def _rank_within(groups: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each group value, in the order given."""
    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    starts = np.r_[0, np.flatnonzero(sorted_groups[1:] != sorted_groups[:-1]) + 1]
    run = np.zeros(groups.size, dtype=np.int64)
    run[starts[1:]] = starts[1:]
    ranks = np.empty(groups.size, dtype=np.int64)
    ranks[order] = np.arange(groups.size) - np.maximum.accumulate(run)
    return ranks


def _timestamps(rng: np.random.Generator, esession: np.ndarray, session_cust: np.ndarray, n_cust: int) -> np.ndarray:
    """Unix seconds for events grouped by session (sessions in customer order, events in session order)."""
    n_sessions = session_cust.size
    per_cust = np.bincount(session_cust, minlength=n_cust)
    room = np.minimum(MAX_SESSION_SECONDS, SPAN_SECONDS / (2.0 * per_cust))  # per customer, >= 1 session each
    session_room = room[session_cust]
    # Sorted uniform starts, then shift the k-th session by k * room: sessions never overlap.
    u = rng.random(n_sessions) * (SPAN_SECONDS - per_cust[session_cust] * session_room)
    u = u[np.lexsort((u, session_cust))]
    first_session = np.cumsum(per_cust) - per_cust
    k = np.arange(n_sessions) - first_session[session_cust]
    start = u + k * session_room

    gaps = rng.exponential(45.0, esession.size) + 3.0
    new = np.r_[True, esession[1:] != esession[:-1]]
    gaps[new] = 0.0
    total = np.cumsum(gaps)
    within = total - np.maximum.accumulate(np.where(new, total, 0.0))
    longest = within[np.r_[new[1:], True]]  # offset of each session's last event
    scale = np.minimum(1.0, np.maximum(session_room - 1.0, 0.0) / np.maximum(longest, 1.0))
    return START_TIMESTAMP + np.floor(start[esession] + within * scale[esession]).astype(np.int64)


# ---------------------------------------------------------------------------------------------
# Writing


def _write_events(path: Path, ev: _Events, customer_ids: np.ndarray, product_ids: np.ndarray) -> None:
    order = np.lexsort((np.arange(ev.timestamp.size), ev.timestamp))
    frame = pd.DataFrame(
        {
            "customer_id": customer_ids[ev.customer[order]],
            "product_id": product_ids[ev.product[order]],
            "type": pd.Categorical.from_codes(ev.type[order], categories=list(EVENT_TYPES)),
            "timestamp": ev.timestamp[order],
        },
        columns=list(EVENT_COLUMNS),
    )
    frame.to_csv(path, index=False, lineterminator="\n")


def _write_catalog(path: Path, cat: _Catalog) -> None:
    cat.frame.to_csv(path, index=False, lineterminator="\n", float_format="%.2f")
