"""RecommendationService: loads a version once, routes each customer to a model, explains results.

The only place that turns external ids into internal indices and back. Routing:
    warm  (>= router.warm_min_products distinct products, and known to the warm model) -> `collaborative`
    few   (at least one interaction)                                                -> `few`
    cold  (none, or an unknown customer)                                            -> popularity
`collaborative` and `few` are the models `recsys train` chose for those segments on the shop's own
data (either may be the popularity model). A list a model leaves short (after exclusions and
filters) is filled from popularity, without duplicates: the same fill the selection measured.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from scipy import sparse
from threadpoolctl import threadpool_limits

from . import artifacts
from .config import Settings
from .controls import ShopState, catalog_unavailable, shop_state
from .data.events import check_ids
from .data.schema import CATALOG_OPTIONAL, EVENT_CODE, EVENT_TYPES
from .dataset import Dataset, UserHistory, csr_row, strongest_code
from .errors import ArtifactError, InputError, LiveStoreError, NotFoundError
from .limits import MAX_BATCH, MAX_N, RULE_SOURCE, SOURCES, WINDOW_PATTERN
from .live import NO_CONTROLS, Controls, LiveEvents
from .models.base import (
    MASKS_KEPT,
    Covers,
    Explains,
    ExplainsOne,
    ExplainsWhileRanking,
    Ranking,
    Recommender,
    RecommendsOne,
    SimilarProducts,
    declares,
    kept_mask,
    lookup,
    recommend_one,
    recommend_one_explained,
    take_rows,
)
from .models.together import BoughtTogetherModel
from .privacy import customer_hash
from .rules import Rules, apply_rules, parse_rules
from .weighting import pair_weights

log = logging.getLogger("recsys.service")

COLD_LIST = 100  # unknown customers' list is routed once per version up to this length
ITEM_ATTRIBUTES = ("brand", "category_path", "price")  # catalog fields every returned product carries, where known
COLLABORATIVE, CONTENT, POPULARITY = 0, 1, 2
VERBS = {0: "viewed", 1: "added to your cart", 2: "purchased"}


def check_n(n: Any) -> int:
    """`n` must be a whole number from 1 to MAX_N."""
    try:
        value = int(str(n).strip())
    except (TypeError, ValueError):
        raise InputError(f"n must be a whole number from 1 to {MAX_N}, got {str(n)[:40]!r}") from None
    if not 1 <= value <= MAX_N:
        raise InputError(f"n must be from 1 to {MAX_N}, got {value}")
    return value


_WINDOW_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


_WINDOW = re.compile(WINDOW_PATTERN)


def parse_window(text: Any) -> int:
    """A window such as `7d`, `12h`, `30m` or `2w`, in seconds (a longer one than the history covers all of it)."""
    raw = str(text).strip().lower()
    match = _WINDOW.match(raw)
    if match is None:
        raise InputError(f"window must be a number and a unit (m, h, d or w), e.g. 7d or 12h; got {raw[:40]!r}")
    return int(float(match.group(1)) * _WINDOW_UNITS[match.group(2)])


def check_seed(seed: Any) -> int:
    """A shuffle seed must be a whole number from 0 to 2**32 - 1."""
    try:
        value = int(str(seed).strip())
    except (TypeError, ValueError):
        raise InputError(f"shuffle must be a whole number (a visit's seed), got {str(seed)[:40]!r}") from None
    if not 0 <= value < 2**32:
        raise InputError(f"shuffle must be from 0 to {2**32 - 1}, got {value}")
    return value


def vary(result: dict, n: int, seed: int) -> dict:
    """The first n items of `result` with the lower half varied by `seed`, the top half unchanged.

    The top ceil(n / 2) items stay; the remaining slots are drawn, without replacement and in
    their original order, from the next-best candidates (the rest of the top n and the half-list
    after it), so repeat visits with other seeds see other products near the bottom while the
    same seed always gives the same list.
    """
    items = result["items"]
    keep = -(-n // 2)
    pool = items[keep:]
    chosen = sorted(np.random.default_rng([seed, zlib.crc32(result["customer_id"].encode())]).permutation(len(pool))[: n - keep])
    varied = items[:keep] + [pool[i] for i in chosen]
    return {**result, "items": [{**item, "rank": rank} for rank, item in enumerate(varied, start=1)]}


@dataclass(frozen=True)
class Filters:
    """Restrictions applied before the cut, so `n` items still come back when the catalog allows.

    `category` (path prefixes) and `brand` take several values: a product passing any one of them
    passes (a single string is one value).
    """

    category: tuple[str, ...] | str | None = ()
    brand: tuple[str, ...] | str | None = ()
    gender: str | None = None
    min_price: float | None = None
    max_price: float | None = None
    exclude: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("category", "brand", "exclude"):
            value = getattr(self, name)
            values = (value,) if isinstance(value, str) else tuple(value or ())
            object.__setattr__(self, name, tuple(dict.fromkeys(v for v in values if v)))

    def active(self) -> bool:
        return any(v not in (None, ()) for v in (self.category, self.brand, self.gender, self.min_price, self.max_price, self.exclude))


@dataclass(frozen=True)
class Precomputed:
    """Known customers' routed lists at train time, first `k` items each.

    Exactly what `route` returns for the training history; a request with no filters, live events
    or session and n <= k reads its row instead of scoring. `row[user]` is the customer's row in
    the arrays, or -1 when train's time budget ran out before them (they are scored).
    """

    k: int
    row: np.ndarray  # (n_users,) int32: row in the arrays below, -1 = not stored
    ids: np.ndarray  # (stored, k) int32, -1 padding
    scores: np.ndarray  # float32
    sources: np.ndarray  # int8
    anchors: np.ndarray  # int32
    codes: np.ndarray  # int8: the anchor's strongest event code
    route: np.ndarray  # (stored,) int8

    def has(self, users: np.ndarray) -> np.ndarray:
        """True for each internal customer whose list is stored."""
        users = np.asarray(users, dtype=np.int64)
        inside = (users >= 0) & (users < len(self.row))
        return inside & (self.row[np.where(inside, users, 0)] >= 0)

    def routed(self, users: np.ndarray, n: int) -> tuple["Routed", np.ndarray]:
        """The first `n` items of `users`' lists (all stored), as `route` output, and their anchor codes."""
        users = self.row[users]
        return (
            Routed(
                ids=self.ids[users, :n].astype(np.int64),
                scores=self.scores[users, :n],
                sources=self.sources[users, :n],
                anchors=self.anchors[users, :n].astype(np.int64),
                route=self.route[users],
            ),
            self.codes[users, :n].astype(np.int64),
        )


@dataclass(frozen=True)
class Routed:
    """Batched router output in internal indices: (n_users, k) arrays, -1 padding."""

    ids: np.ndarray
    scores: np.ndarray
    sources: np.ndarray  # per item: 0 collaborative, 1 content, 2 popularity
    anchors: np.ndarray  # per item: the history item that explains it, or -1
    route: np.ndarray  # per customer: the primary source


class RecommendationService:
    """Everything a CLI command or a REST route needs, loaded once."""

    def __init__(
        self,
        dataset: Dataset,
        popularity: Ranking,
        content: SimilarProducts,
        collaborative: Recommender,
        settings: Settings,
        *,
        few: Recommender | None = None,
        version: str = "in-memory",
        manifest: dict | None = None,
        live: LiveEvents | None = None,
        precomputed: Precomputed | None = None,
        together: BoughtTogetherModel | None = None,
    ):
        self.dataset = dataset
        self.popularity = popularity
        self.content = content
        self.collaborative = collaborative
        self.few = few if few is not None else content
        self.settings = settings
        self.version = version
        self.manifest = manifest or {}
        self.live = live
        self.together = together
        # stored lists from another layout (an older version of this code) are ignored: they are scored
        row = getattr(precomputed, "row", None)
        self.precomputed = precomputed if isinstance(row, np.ndarray) and len(row) == dataset.n_users else None
        self.loaded_at = time.time()
        router = settings["router"]
        self.warm_min = int(router["warm_min_products"])
        unknown = [name for name in router["exclude"] if name not in EVENT_CODE]
        if unknown:
            raise InputError(f"router.exclude: unknown event types {', '.join(unknown)}")
        self.exclude_codes = np.array(sorted(EVENT_CODE[name] for name in router["exclude"]), dtype=np.int8)
        # indexed by a history's stored strongest code (event code + 1; 0 is "no event")
        self._excluded_stored = np.isin(np.arange(len(EVENT_CODE) + 1) - 1, self.exclude_codes)
        self.session_items = int(router["session_items"])
        self.session_weight = float(router["session_weight"])
        self.rules = parse_rules(settings["rules"]["boost"], settings["rules"]["pin"], where="settings [rules]")
        self._has_rules = self.rules.active()
        unknown = [pin.product_id for pin in self.rules.pins if dataset.items.get(pin.product_id) < 0]
        if unknown:
            raise InputError(f"settings [rules] pin: unknown product '{unknown[0][:200]}' (not in the trained data)")
        self._purchasers = dataset.item_counts()["purchasers"].to_numpy()
        self._popular_reasons: dict[int, str] = {}  # a popular product's reason never changes within a version
        self._attribute_cache: dict[int, dict] = {}
        self._attribute_columns = {
            name: (dataset.catalog[name].astype(object) if name != "price" else dataset.catalog[name].astype(float).round(2)).tolist()
            for name in ITEM_ATTRIBUTES
            if name in dataset.catalog.columns
        }
        recommendable = np.asarray(dataset.recommendable, dtype=bool)
        # products known only from events are never recommended; None when that excludes nothing
        self._recommendable = None if recommendable.all() else recommendable
        catalog = dataset.catalog
        self._catalog = catalog
        # filters compare a request's value with the few distinct values, then map to items by code
        self._category, self._brand, self._gender = (_codes(catalog[column]) for column in ("category_path", "brand", "gender"))
        self._price = catalog["price"].to_numpy(dtype=float)
        self._masks: dict[tuple, np.ndarray] = {}  # filter value(s) -> products passing, read-only (see _value_mask)
        self._allowed_kept: tuple[int, dict] = (-1, {})  # (controls generation, filters -> allowed products), see allowed
        self._catalog_unavailable = catalog_unavailable(catalog)
        # generation 0 is a store nobody has changed: the catalog's availability alone
        self._shop = shop_state(0, dataset.items, self._recommendable, self._catalog_unavailable, {}, {})
        self._shop_lock = threading.Lock()

    # --- construction ------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        artifacts_dir: Path,
        *,
        version: str | None = None,
        live: LiveEvents | None = None,
        changes: dict[str, dict[str, Any]] | None = None,
    ) -> "RecommendationService":
        """Load and verify `current` (or `version`) from an artifacts folder; `changes` are served settings (`--set`)."""
        loaded = artifacts.load(artifacts_dir, version)
        # the version's own settings, whatever ./recsys.toml or the environment say now
        trained = Settings(loaded.manifest.get("settings") or {}, loaded.manifest.get("settings_sources"))
        settings = trained.updated(changes or {})
        # stored lists were routed with the version's segments and exclusions: other ones mean scoring on request
        stored = [(s.router.warm_min_products, s.router.exclude) for s in (trained, settings)]
        parts = loaded.parts
        # a segment model may be stored as the name of another part it shares
        resolve = {name: parts[part] if isinstance(part, str) else part for name, part in parts.items()}
        return cls(
            resolve["dataset"],
            resolve["popularity"],
            resolve["content"],
            resolve["collaborative"],
            settings,
            few=resolve.get("few"),
            version=loaded.version,
            manifest=loaded.manifest,
            live=live,
            precomputed=resolve.get("precomputed") if stored[0] == stored[1] else None,
            together=resolve.get("together"),
        )

    @classmethod
    def from_trained(cls, trained: Any, settings: Settings, **kwargs: Any) -> "RecommendationService":
        return cls(
            trained.dataset,
            trained.popularity,
            trained.content,
            trained.collaborative,
            settings,
            few=trained.few,
            precomputed=trained.precomputed,
            together=trained.together,
            **kwargs,
        )

    def precompute(self, k: int, *, seconds: float | None = None, workers: int | None = None) -> Precomputed:
        """Route known customers once (training history) and keep their first `k` items.

        The most active customers go first; with a time budget (`seconds`) the rest are left to be
        scored on request, so a large shop's training time stays bounded.
        """
        distinct = np.diff(self.dataset.interactions.indptr)
        users = np.argsort(-distinct, kind="stable")
        parts: list[tuple[np.ndarray, Routed, np.ndarray]] = []
        started = time.perf_counter()
        for part, (routed, codes) in self._route_batches(users, k, workers=workers):
            parts.append((users[part], routed, codes))
            if seconds is not None and time.perf_counter() - started > seconds:
                break
        done = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, dtype=np.int64)
        row = np.full(self.dataset.n_users, -1, dtype=np.int32)
        row[done] = np.arange(len(done), dtype=np.int32)

        def stacked(name: str, dtype: type) -> np.ndarray:
            if not parts:
                return np.zeros((0, k) if name != "route" else (0,), dtype=dtype)
            return np.concatenate([getattr(p[1], name) for p in parts]).astype(dtype)

        return Precomputed(
            k=k,
            row=row,
            ids=stacked("ids", np.int32),
            scores=stacked("scores", np.float32),
            sources=stacked("sources", np.int8),
            anchors=stacked("anchors", np.int32),
            codes=(np.concatenate([p[2] for p in parts]) if parts else np.zeros((0, k))).astype(np.int8),
            route=stacked("route", np.int8),
        )

    # --- routing (internal indices, batched) -----------------------------------------------------

    def exclusions(self, history: UserHistory) -> sparse.csr_matrix:
        """Items each customer must not be recommended: those with an excluded strongest event."""
        strongest = history.strongest.tocsr()
        mask = self._excluded_stored[strongest.data]
        if mask.all():  # every stored code is nonzero: the history's own pattern marks the same products
            return strongest
        counts = np.bincount(np.repeat(np.arange(strongest.shape[0]), np.diff(strongest.indptr))[mask], minlength=strongest.shape[0])
        indptr = np.concatenate([[0], np.cumsum(counts)])
        return sparse.csr_matrix((np.ones(int(mask.sum()), dtype=np.int8), strongest.indices[mask], indptr), shape=strongest.shape)

    def allowed(self, filters: Filters | None = None, shop: ShopState | None = None) -> np.ndarray | None:
        """Products that may be recommended under `filters` (None: every product): listed in the
        catalog, available (catalog and live overrides, as of `shop`) and passing the filters.
        Kept (read-only) per filter and controls generation like the masks it combines, unless the
        filter excludes products by id: such lists rarely repeat, and would push the kept masks out."""
        shop = shop or self._shop
        if filters is None or not filters.active():
            return shop.allowed
        generation, kept = self._allowed_kept
        if generation != shop.generation:  # availability changed: the masks of the last generation are stale
            generation, kept = self._allowed_kept = (shop.generation, {})
        mask = kept.get(filters)
        if mask is None:
            mask = self.filter_mask(filters)
            if shop.allowed is not None:
                mask &= shop.allowed
            if not filters.exclude:
                _keep(kept, filters, mask)
        return mask

    # --- the shop's controls: availability, hide lists, the deletion list ------------------------

    def shop(self, customer_id: str = "", *, controls: Controls | None = None) -> tuple[ShopState, np.ndarray]:
        """The current availability and deletion list, and `customer_id`'s hidden products (internal, sorted).

        One read of the live store per call (none when `controls` were read with the customer's
        events); availability and the deletion list are re-read only when its controls generation
        has moved since the last call.
        """
        if self.live is None:
            return self._shop, _NO_ITEMS
        if controls is None:
            controls = self.live.controls(customer_id)
        state = self._shop
        if controls is not NO_CONTROLS and controls.generation != state.generation:
            state = self._refresh_shop(controls.generation)
        if not controls.hidden:
            return state, _NO_ITEMS
        hidden = self.dataset.items.to_internal(list(controls.hidden))
        return state, np.unique(hidden[hidden >= 0])

    def _refresh_shop(self, generation: int) -> ShopState:
        with self._shop_lock:
            if self._shop.generation == generation:
                return self._shop
            try:
                overrides, forgotten = self.live.availability(), self.live.forgotten()
            except LiveStoreError as error:  # keep serving with what we knew
                log.error("live store controls unreadable, keeping generation %s: %s", self._shop.generation, error)
                return self._shop
            self._shop = shop_state(generation, self.dataset.items, self._recommendable, self._catalog_unavailable, overrides, forgotten)
            return self._shop

    def _store(self) -> LiveEvents:
        if self.live is None:
            raise InputError("this needs the live store (the server's, or --data / --live-store on the command line)")
        return self.live

    def set_availability(self, product_ids: Sequence[str], available: bool) -> dict:
        """Make products (un)available from the next request on, in every process that shares the
        live store; their events still train the models. Unknown products: NotFoundError."""
        store, ids = self._store(), _ids(product_ids, "product_ids")
        for product_id in ids:
            self._item(product_id)
        store.set_availability(ids, bool(available), at=int(time.time()))
        return {"product_ids": ids, "available": bool(available)}

    def hide(self, customer_id: str, product_ids: Sequence[str]) -> dict:
        """Add products to a customer's hide list: never recommended to them again (recently-viewed
        leaves them out too), from the next request on. Unknown products: NotFoundError."""
        store, ids = self._store(), _ids(product_ids, "product_ids")
        for product_id in ids:
            self._item(product_id)
        customer_id = _ids([customer_id], "customer_id")[0]
        store.hide(customer_id, ids, at=int(time.time()))
        return self.hidden(customer_id)

    def hidden(self, customer_id: str) -> dict:
        """A customer's hide list, oldest first."""
        return {"customer_id": str(customer_id), "product_ids": self._store().hidden(str(customer_id))}

    def forget(self, customer_id: str) -> dict:
        """Forget a customer at once: their live events and hide list are removed, their hash joins the
        deletion list (ingest drops their events up to now from every later snapshot, so the next
        model has never seen them), and they are answered as an unknown customer from now on.
        Logged with the hash only."""
        store, customer_id = self._store(), _ids([customer_id], "customer_id")[0]
        digest = customer_hash(customer_id)
        removed = store.forget(customer_id, digest, at=int(time.time()))
        log.info("customer forgotten customer_hash=%s live_events_removed=%d", digest, removed)
        return {"customer_hash": digest, "live_events_removed": removed}

    def availability(self, product_id: str) -> dict:
        """Whether a product may be recommended now (catalog column and live overrides)."""
        item = self._item(product_id)
        state, _ = self.shop()
        return {"product_id": str(product_id), "available": state.is_available(item)}

    def covered(self, users: np.ndarray) -> np.ndarray:
        """Customers the warm model can score: every known one, unless it declares `Covers`."""
        known = users >= 0
        if not declares(self.collaborative, Covers):
            return known
        result = np.zeros(len(users), dtype=bool)
        result[known] = self.collaborative.covers_users(users[known])
        return result

    def route(
        self,
        users: np.ndarray,
        history: UserHistory,
        k: int,
        *,
        allowed: np.ndarray | None = None,
        session: list[np.ndarray] | None = None,
        hidden: sparse.csr_matrix | None = None,
    ) -> Routed:
        """Route every customer, then fill short lists from the next model; no duplicates.

        `allowed` (one flag per product, as from `allowed(filters)`; default: every available
        product) limits every model and the fill; `hidden` (rows aligned with `users`) marks
        products a customer asked never to see, excluded like their purchases. One customer (a
        request) takes `_route_one` when their segment's model has a short path.
        """
        users = np.asarray(users, dtype=np.int64)
        n = len(users)
        hidden = hidden if hidden is not None and hidden.nnz else None
        if n == 1:
            recent = session[0] if session is not None and self.session_weight > 0 else None
            routed = self._route_one(int(users[0]), history, k, allowed if allowed is not None else self._shop.allowed, hidden, recent)
            if routed is not None:
                return routed
        distinct = np.diff(history.weights.indptr)
        exclude = self.exclusions(history)
        if allowed is None:
            allowed = self._shop.allowed
        # one customer whose model has no short path: their exclusions folded into one mask with the
        # availability's (no pairs to check), unless it is a filter's kept mask, which goes to the models
        # unchanged with the exclusions beside it: models keep what they derive from a kept mask (see
        # models.base.MaskCache)
        kept = allowed is not None and kept_mask(allowed)
        if n == 1 and (exclude.nnz or hidden is not None) and not kept:
            allowed = np.ones(self.dataset.n_items, dtype=bool) if allowed is None else allowed.copy()
            for blocked in (exclude, hidden):
                if blocked is not None:
                    allowed[blocked.indices] = False
            exclude = None
        elif hidden is not None:
            exclude = _with_hidden(exclude, hidden)
        warm = (distinct >= self.warm_min) & self.covered(users)
        few = (distinct >= 1) & ~warm
        route = np.full(n, POPULARITY, dtype=np.int8)
        route[warm], route[few] = self.source_of(self.collaborative), self.source_of(self.few)
        ids = np.full((n, k), -1, dtype=np.int64)
        scores = np.full((n, k), -np.inf, dtype=np.float32)
        sources = np.full((n, k), -1, dtype=np.int8)
        anchors = np.full((n, k), -1, dtype=np.int64)

        for segment, model in ((warm, self.collaborative), (few, self.few)):
            rows = np.flatnonzero(segment)
            if not len(rows):
                continue
            whole = len(rows) == n  # one segment (always so for one customer): the rows as given
            sub = history if whole else _rows(history, rows)
            excluded = exclude if whole or exclude is None else take_rows(exclude, rows)
            if model is self.collaborative and session is not None and self.session_weight > 0 and not declares(model, Ranking):
                got_ids, got_scores = self._blend_session(users[rows], sub, excluded, k, [session[i] for i in rows], allowed)
            elif declares(model, ExplainsWhileRanking):
                got_ids, got_scores, got_anchors = model.recommend_explained(
                    users[rows], k=k, exclude=excluded, history=sub, allowed=allowed
                )
                ids[rows], scores[rows], sources[rows], anchors[rows] = got_ids, got_scores, self.source_of(model), got_anchors
                continue
            else:
                got_ids, got_scores = model.recommend(users[rows], k=k, exclude=excluded, history=sub, allowed=allowed)
            ids[rows], scores[rows], sources[rows] = got_ids, got_scores, self.source_of(model)
            anchors[rows] = self._explain(model, sub, got_ids)
        rows = np.flatnonzero(ids[:, -1] < 0)
        if len(rows):
            excluded = take_rows(exclude, rows) if exclude is not None else None
            got_ids, got_scores = self.popularity.recommend(users[rows], k=2 * k, exclude=excluded, allowed=allowed)
            _merge(ids, scores, sources, anchors, rows, got_ids, got_scores, POPULARITY, None)
        sources[ids < 0] = -1
        # a customer's source is the model their list starts with (a model that found nothing is not it)
        route = np.where(sources[:, 0] >= 0, sources[:, 0], route).astype(np.int8)
        return Routed(ids=ids, scores=scores, sources=sources, anchors=anchors, route=route)

    def _route_one(
        self,
        user: int,
        history: UserHistory,
        k: int,
        allowed: np.ndarray | None,
        hidden: sparse.csr_matrix | None,
        session: np.ndarray | None = None,
    ) -> Routed | None:
        """`route` for one customer (a request) whose segment's model has a short path
        (`RecommendsOne`): the same list without the batch bookkeeping; None for any other model.
        `session` (their recent live products) re-ranks the warm model's candidates (`_blend_session`)."""
        distinct = history.weights.indptr[1] - history.weights.indptr[0]
        warm = distinct >= self.warm_min and user >= 0 and (not declares(self.collaborative, Covers) or self.covered(np.array([user]))[0])
        model = self.collaborative if warm else self.few if distinct >= 1 else None
        if model is not None and (not declares(model, RecommendsOne) or declares(model, ExplainsWhileRanking)):
            return None
        exclude = self.exclusions(history)
        if hidden is not None:
            exclude = _with_hidden(exclude, hidden)
        ids, scores, sources, anchors = (blank.copy() for blank in _blank_row(k))
        route = POPULARITY
        excluded = exclude.indices[exclude.indptr[0] : exclude.indptr[1]]
        if model is not None:
            route = self.source_of(model)
            if session is not None and model is self.collaborative and not declares(model, Ranking):
                # a model that `ExplainsOne` (EASE) reads each product's anchor from its own column, so the pool's
                # are the final list's; any other explains the final list as the batch does (a product's
                # affinities may round differently in a wider BLAS product)
                explained = declares(model, ExplainsOne)
                pool = (model.recommend_one_explained if explained else model.recommend_one)(
                    user, history, k=_session_pool(k), allowed=allowed, excluded=excluded
                )
                ids[0], scores[0], picked = self._session_rerank(pool[0], pool[1], session, k)
                anchors[0] = np.where(picked >= 0, pool[2][picked], -1) if explained else self._explain(model, history, ids)[0]
            else:
                ids[0], scores[0], anchors[0] = recommend_one_explained(model, user, history, k=k, allowed=allowed, excluded=excluded)
            sources[0] = route
        if ids[0, -1] < 0:
            got_ids, got_scores = recommend_one(self.popularity, user, history, k=2 * k, allowed=allowed, excluded=excluded)
            _merge(ids, scores, sources, anchors, [0], got_ids[None, :], got_scores[None, :], POPULARITY, None)
        sources[ids < 0] = -1
        first = int(sources[0, 0])
        return Routed(
            ids=ids, scores=scores, sources=sources, anchors=anchors, route=np.array([first if first >= 0 else route], dtype=np.int8)
        )

    def source_of(self, model: Recommender) -> int:
        """The source label (COLLABORATIVE, CONTENT or POPULARITY) of one of the served models."""
        if declares(model, Ranking):  # the cold ranking, or another one chosen for a segment
            return POPULARITY
        return CONTENT if model is self.content else COLLABORATIVE

    @staticmethod
    def _explain(model: Recommender, history: UserHistory, ids: np.ndarray) -> np.ndarray:
        """The history item that best explains each recommendation (-1 if none or unexplainable)."""
        if not declares(model, Explains):
            return np.full(ids.shape, -1, dtype=np.int64)
        return model.explain(history, ids)

    def _blend_session(
        self,
        users: np.ndarray,
        history: UserHistory,
        exclude: sparse.csr_matrix,
        k: int,
        session: list[np.ndarray],
        allowed: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Re-rank a warm customer's candidates by similarity to their last live products.

        score = (1 - w) * model score scaled to [0, 1] over the candidates + w * max content
        similarity of the candidate to the last `router.session_items` live products.
        """
        cand_ids, cand_scores = self.collaborative.recommend(users, k=_session_pool(k), exclude=exclude, history=history, allowed=allowed)
        out_ids = np.full((len(users), k), -1, dtype=np.int64)
        out_scores = np.full((len(users), k), -np.inf, dtype=np.float32)
        for row, recent in enumerate(session):
            out_ids[row], out_scores[row], _ = self._session_rerank(cand_ids[row], cand_scores[row], recent, k)
        return out_ids, out_scores

    def _session_rerank(self, ids: np.ndarray, scores: np.ndarray, recent: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One customer's candidates (ids, scores, best first) re-ranked by `_blend_session`'s rule:
        the top k, padded with -1 / -inf, and each one's position among the candidates (-1 padding)."""
        out_ids, out_scores = np.full(k, -1, dtype=np.int64), np.full(k, -np.inf, dtype=np.float32)
        out_from = np.full(k, -1, dtype=np.int64)
        valid = np.flatnonzero(ids >= 0)
        items, raw = ids[valid], scores[valid].astype(np.float64)
        if not len(items):
            return out_ids, out_scores, out_from
        scaled = (raw - raw.min()) / (raw.max() - raw.min()) if raw.max() > raw.min() else np.ones_like(raw)
        boost = np.zeros(len(items))
        recent = recent[: self.session_items]
        if len(recent):
            neighbour_ids, neighbour_scores = self.content.similar_items(recent, k=self.content.neighbour_count())
            boost = _best_per_item(neighbour_ids.ravel(), neighbour_scores.ravel(), items)
        blended = (1 - self.session_weight) * scaled + self.session_weight * boost
        order = np.argsort(-blended, kind="stable")[:k]
        out_ids[: len(order)], out_scores[: len(order)], out_from[: len(order)] = items[order], blended[order], valid[order]
        return out_ids, out_scores, out_from

    # --- external ids in, dictionaries out -----------------------------------------------------

    def history_for(
        self,
        customer_id: str,
        viewed: Sequence[str] = (),
        *,
        live_rows: list | None = None,
        forgotten: bool = False,
        user: int | None = None,
    ) -> tuple[int, UserHistory, np.ndarray]:
        """A customer's history: training rows merged with their live events (and `viewed`, the
        current session's products, newest last); also their recent live items, newest first.
        `live_rows` passes what `live_rows(customer_id, viewed)` already returned, `user` the
        customer's index when the caller looked it up; a `forgotten` customer has no training
        history (only what they did since)."""
        if forgotten:
            user = -1
        elif user is None:
            user = self.dataset.users.get(customer_id)
        base = self._history_row(user) if user >= 0 else self._empty_history
        if live_rows is None:
            live_rows = self.live_rows(customer_id, viewed)
        if not live_rows:
            return user, base, np.zeros(0, dtype=np.int64)
        return user, *self._merge_live(base, live_rows)

    def live_rows(
        self, customer_id: str, viewed: Sequence[str] = (), *, events: list[tuple[str, int, int]] | None = None
    ) -> list[tuple[str, int, int]]:
        """A customer's live events (`events` when already read) and `viewed` session products as
        (product_id, type code, time), newest first."""
        if events is not None:
            live_rows = events
        else:
            live_rows = self.live.for_customer(customer_id) if self.live is not None else []
        if viewed:
            now = int(time.time())
            session = [(str(self.dataset.items.external_ids[self._item(p)]), 0, now - age) for age, p in enumerate(reversed(viewed))]
            live_rows = session + list(live_rows)
        return live_rows

    @property
    def _empty_history(self) -> UserHistory:
        cached = self.__dict__.get("_empty")
        if cached is None:
            empty = sparse.csr_matrix((1, self.dataset.n_items))
            cached = UserHistory(empty.astype(np.float32), empty.astype(np.float64), empty.astype(np.int8))
            self.__dict__["_empty"] = cached
        return cached

    def _history_row(self, user: int) -> UserHistory:
        """One customer's training history, cut straight from the CSR arrays (no fancy indexing)."""
        full = self.dataset.history()
        start, stop = full.weights.indptr[user], full.weights.indptr[user + 1]
        data = (full.weights.data[start:stop], full.last_seen.data[start:stop], full.strongest.data[start:stop])
        ordered = True if full.weights.has_sorted_indices else None  # distinct pairs: sorted rows increase
        return UserHistory.one(full.weights.indices[start:stop], *data, self.dataset.n_items, sorted_indices=ordered)

    def _merge_live(self, base: UserHistory, live_rows: list[tuple[str, int, int]]) -> tuple[UserHistory, np.ndarray]:
        """Fold live events (newest first) into a one-row history: per product the strongest event,
        the latest time and the larger of the training weight and the live events' weight."""
        items, tally = self.dataset.items.to_internal([row[0] for row in live_rows]).tolist(), {}
        for item, (_, kind, stamp) in zip(items, live_rows, strict=True):  # a dict beats a dozen array calls
            if item < 0:
                continue
            entry = tally.get(item)
            if entry is None:
                entry = tally[item] = [0, 0, 0, 0]  # views, carts, purchases, latest time (from 0, as before)
            if 0 <= kind < 3:
                entry[kind] += 1
            if stamp > entry[3]:
                entry[3] = stamp
        if not tally:
            return base, np.zeros(0, dtype=np.int64)
        recent = np.fromiter(tally, dtype=np.int64, count=len(tally))  # newest first, each product once
        order = np.argsort(recent)
        live_items, table = recent[order], np.array(list(tally.values()), dtype=np.int64)[order]
        counts = {"n_view": table[:, 0], "n_cart": table[:, 1], "n_purchase": table[:, 2]}
        last = table[:, 3]
        live_weight = pair_weights({**counts, "last_ts": last}, self.dataset.weighting)
        live_strongest = strongest_code(counts) + 1  # stored as code + 1: 0 is the sparse "no event"

        merged = np.union1d(base.weights.indices, live_items)
        weights = np.zeros(len(merged), dtype=np.float32)
        strongest = np.zeros(len(merged), dtype=np.int8)
        seen = np.zeros(len(merged), dtype=np.float64)
        at = np.searchsorted(merged, base.weights.indices)
        weights[at], strongest[at], seen[at] = base.weights.data, base.strongest.data, base.last_seen.data
        at = np.searchsorted(merged, live_items)
        weights[at] = np.maximum(weights[at], live_weight)
        strongest[at] = np.maximum(strongest[at], live_strongest)
        seen[at] = np.maximum(seen[at], last)
        return UserHistory.one(merged, weights, seen, strongest, self.dataset.n_items, sorted_indices=True), recent  # union1d sorts

    def filter_mask(self, filters: Filters) -> np.ndarray:
        """Items that pass the filters (a new array: callers may change it)."""
        parts = []
        if filters.category:
            parts.append(self._value_mask("category", filters.category))
        if filters.brand:
            parts.append(self._value_mask("brand", filters.brand))
        if filters.gender:
            parts.append(self._value_mask("gender", (filters.gender,)))
        if filters.min_price is not None:
            parts.append(self._price >= filters.min_price)
        if filters.max_price is not None:
            parts.append(self._price <= filters.max_price)
        if not parts:
            allowed = np.ones(self.dataset.n_items, dtype=bool)
        else:
            allowed = np.logical_and.reduce(parts) if len(parts) > 1 else parts[0].copy()
        if filters.exclude:
            internal = self.dataset.items.to_internal(list(filters.exclude))
            allowed[internal[internal >= 0]] = False
        return allowed

    def _value_mask(self, field: str, values: tuple[str, ...]) -> np.ndarray:
        """Products whose `field` matches any of `values` (category: a path prefix), computed once per
        distinct request value and kept (up to MASKS_KEPT of them): mapping the catalog's codes to
        products is the costly step on a large catalog (~0.3 ms at 283k products), a repeat is free.
        (Price bounds are one comparison; a repeated whole filter is kept by `allowed`.)"""
        key = (field, values)
        mask = self._masks.get(key)
        if mask is None:
            if field == "category":
                codes, names = self._category
                mask = np.logical_or.reduce([np.char.startswith(names, prefix) for prefix in values])[codes]
            else:
                codes, names = self._brand if field == "brand" else self._gender
                mask = np.isin(names, list(values))[codes]
            _keep(self._masks, key, mask)
        return mask

    def recommend(
        self,
        customer_id: str,
        n: int = 10,
        *,
        filters: Filters | None = None,
        viewed: Sequence[str] = (),
        shuffle: int | None = None,
        rules: Rules | None = None,
    ) -> dict:
        """Recommendations for one customer: {customer_id, source, model_version, items: [...]}.

        `viewed` adds products seen in the current session (e.g. an anonymous visitor's) as views.
        `shuffle` (a visit's seed) varies the lower half of the list: see `vary`. `rules` (a
        request's boosts and pins) add to the version's `[rules]`: see rules.py.
        """
        n = check_n(n)
        if rules is None or not rules.active():
            if not self._has_rules:  # the common case: no rules at all, nothing more to do
                customer_id = str(customer_id)
                return self._recommend(customer_id, n, filters, shuffle, self._read(customer_id, viewed))
            rules = self.rules
        else:
            for pin in rules.pins:
                self._item(pin.product_id)  # a request pinning an unknown product: NotFoundError
            rules = self.rules.merged(rules)
        # boosts re-rank the candidates: twice n, at least the stored list's 20, so a plain request still reads it
        customer_id = str(customer_id)
        read = self._read(customer_id, viewed)  # once, for the list and the pins
        wider = self._recommend(customer_id, min(max(2 * n, 20), MAX_N), filters, shuffle, read)
        return {**wider, "items": apply_rules(wider["items"], n, rules, self._pinned(customer_id, rules, filters, read))}

    def _pinned(self, customer_id: str, rules: Rules, filters: Filters | None, read: "_Read") -> dict[str, dict]:
        """The pinned products this customer may be shown (known, available, passing the filters, not
        hidden, not excluded by their history), as result items."""
        if not rules.pins:
            return {}
        shop, hidden = read.shop, read.hidden
        allowed = self.allowed(filters, shop)
        _, history, _ = self.history_for(customer_id, live_rows=read.live_rows, forgotten=read.forgotten)
        strongest = history.strongest.tocsr()
        shown = {}
        for pin in rules.pins:
            item = self.dataset.items.get(pin.product_id)
            if item < 0 or (allowed is not None and not allowed[item]) or item in hidden:
                continue
            if self._excluded_stored[int(strongest[0, item])]:  # by the strongest event's stored code
                continue
            shown[pin.product_id] = {
                "product_id": pin.product_id,
                "score": 0.0,
                "rank": pin.slot,
                "source": RULE_SOURCE,
                "reason": f"featured by the shop (pinned to place {pin.slot})",
                **self._attributes(item),
            }
        return shown

    def _read(self, customer_id: str, viewed: Sequence[str]) -> "_Read":
        """What a request reads from the live store, in one round trip: the customer's live events
        (with `viewed`), the shop's controls and their hide list."""
        if self.live is None:
            live_rows, shop, hidden = self.live_rows(customer_id, viewed), self._shop, _NO_ITEMS
        else:
            events, controls = self.live.for_request(customer_id)
            live_rows = self.live_rows(customer_id, viewed, events=events)
            shop, hidden = self.shop(customer_id, controls=controls)
        return _Read(live_rows, shop, hidden, shop.forgets(customer_id))

    def _recommend(self, customer_id: str, n: int, filters: Filters | None, shuffle: int | None, read: "_Read") -> dict:
        """One customer's list from what the request read (`_read`: live events and `viewed`, controls)."""
        if shuffle is not None:
            wider = self._recommend(customer_id, min(n + n // 2, MAX_N), filters, None, read)
            return vary(wider, n, check_seed(shuffle))
        live_rows, shop, hidden, forgotten = read
        pre, user = self.precomputed, -1 if forgotten else self.dataset.users.get(customer_id)
        plain = not live_rows and (filters is None or not filters.active())
        if plain and pre is not None and user >= 0 and n <= pre.k and pre.row[user] >= 0:
            if shop.unavailable is None and not len(hidden):  # the list train stored: nothing changed since
                return next(iter(self._results([customer_id], *pre.routed(np.array([user]), n))))
            # products made unavailable or hidden since are dropped; scored when fewer than n remain
            kept = _served(*pre.routed(np.array([user]), pre.k), n, shop.unavailable, hidden)
            if kept is not None:
                return next(iter(self._results([customer_id], *kept)))
        if plain and user < 0 and n <= COLD_LIST:
            kept = _served(*self._cold_list(shop, COLD_LIST if len(hidden) else n), n, None, hidden)  # everyone unknown: the same list
            if kept is not None:
                return next(iter(self._results([customer_id], *kept)))
        user, history, recent = self.history_for(customer_id, live_rows=live_rows, forgotten=forgotten, user=user)
        session = [recent] if len(recent) else None
        routed = self.route(
            np.array([user]), history, n, allowed=self.allowed(filters, shop), session=session, hidden=self._hidden_row(hidden)
        )
        return next(iter(self._results([customer_id], routed, anchor_codes(history.strongest, routed.anchors))))

    def _hidden_row(self, hidden: np.ndarray) -> sparse.csr_matrix | None:
        if not len(hidden):
            return None
        return csr_row(self.dataset.n_items, np.ones(len(hidden), dtype=np.int8), hidden, sorted_indices=True)  # shop() sorts them

    def _cold_list(self, shop: ShopState, n: int) -> tuple[Routed, np.ndarray]:
        """The first `n` of the list every unknown customer without live events gets (routed once per
        version and availability)."""
        cached = self.__dict__.get("_cold_cache")
        if cached is None or cached[0] != shop.generation:
            routed = self.route(np.array([-1]), self._empty_history, COLD_LIST, allowed=shop.allowed)
            cached = self.__dict__["_cold_cache"] = (shop.generation, routed, np.full((1, COLD_LIST), -1, dtype=np.int64))
        _, routed, codes = cached
        head = Routed(routed.ids[:, :n], routed.scores[:, :n], routed.sources[:, :n], routed.anchors[:, :n], routed.route)
        return head, codes[:, :n]

    def recommend_many(
        self, customer_ids: Iterable[str], n: int = 10, *, batch_size: int = 2000, workers: int | None = None
    ) -> Iterable[dict]:
        """Recommendations for many customers, in input order, routed in vectorized batches
        (training history only).

        Batches are routed on `workers` threads (default: one per CPU, at most 4; numpy and BLAS
        release the GIL for the heavy steps), each with single-threaded BLAS, while the results
        of finished batches are yielded.
        """
        n = check_n(n)
        ids = [str(c) for c in customer_ids]
        users = self.dataset.users.to_internal(ids)
        shop, _ = self.shop()
        if shop.forgotten:
            users = np.where([shop.forgets(c) for c in ids], -1, users) if ids else users
        for part, (routed, codes) in self._route_batches(users, n, batch_size=batch_size, workers=workers):
            yield from self._results([ids[i] for i in part], routed, codes)

    def _route_batches(
        self, users: np.ndarray, k: int, *, batch_size: int = 2000, workers: int | None = None
    ) -> Iterator[tuple[np.ndarray, tuple[Routed, np.ndarray]]]:
        """(positions, (routed, anchor codes)) per batch of `users`, in order; known customers'
        lists come from the precomputed ones when they are long enough."""
        parts = [np.arange(start, min(start + batch_size, len(users))) for start in range(0, len(users), batch_size)]
        workers = workers or min(4, os.cpu_count() or 1)
        pre = self.precomputed if self.precomputed is not None and k <= self.precomputed.k else None
        unavailable = self._shop.unavailable

        def run(part: np.ndarray) -> tuple[Routed, np.ndarray]:
            batch = users[part]
            known = pre.has(batch) if pre is not None else np.zeros(len(batch), dtype=bool)
            if unavailable is not None and known.any():  # stored lists with a product unavailable since are scored
                stored = pre.ids[pre.row[batch[known]], :k]
                known[np.flatnonzero(known)[(unavailable[np.maximum(stored, 0)] & (stored >= 0)).any(axis=1)]] = False
            if known.all():
                return pre.routed(batch, k)
            scored = np.flatnonzero(~known)
            history = self.history_rows(batch[scored])
            routed = self.route(batch[scored], history, k)
            codes = anchor_codes(history.strongest, routed.anchors)
            if not known.any():
                return routed, codes
            stored, stored_codes = pre.routed(batch[known], k)
            merged = {}
            for name in ("ids", "scores", "sources", "anchors", "route"):
                whole = np.empty((len(batch), *getattr(routed, name).shape[1:]), dtype=getattr(routed, name).dtype)
                whole[scored], whole[known] = getattr(routed, name), getattr(stored, name)
                merged[name] = whole
            all_codes = np.empty((len(batch), k), dtype=np.int64)
            all_codes[scored], all_codes[known] = codes, stored_codes
            return Routed(**merged), all_codes

        with threadpool_limits(1, "blas"), ThreadPoolExecutor(max_workers=workers) as pool:
            pending = [pool.submit(run, part) for part in parts[:workers]]
            for index, part in enumerate(parts):
                result = pending[index].result()
                if index + workers < len(parts):
                    pending.append(pool.submit(run, parts[index + workers]))
                yield part, result

    def history_rows(self, users: np.ndarray) -> UserHistory:
        """Training history rows of internal `users` (-1: an empty row), for batch routing."""
        rows = np.where(users >= 0, users, 0)
        full = self.dataset.history(rows)
        if (users < 0).any():
            keep = sparse.diags((users >= 0).astype(np.float32))
            full = UserHistory(
                (keep @ full.weights).tocsr(), (keep @ full.last_seen).tocsr(), (keep.astype(np.int8) @ full.strongest).tocsr()
            )
            for matrix in (full.weights, full.last_seen, full.strongest):
                matrix.eliminate_zeros()
        return full

    def _results(self, customer_ids: Sequence[str], routed: Routed, codes: np.ndarray) -> Iterable[dict]:
        """One result dictionary per routed row; ids, scores and anchors converted once per batch."""
        external, reason, attributes = self._external_ids(), self._reason, self._attributes
        ids, anchors = routed.ids.tolist(), routed.anchors.tolist()
        scores = np.round(routed.scores.astype(np.float64), 6).tolist()
        sources, codes, routes = routed.sources.tolist(), codes.tolist(), routed.route.tolist()
        for row, customer_id in enumerate(customer_ids):
            shown = [entry for entry in zip(ids[row], scores[row], sources[row], anchors[row], codes[row], strict=True) if entry[0] >= 0]
            items = [
                {
                    "product_id": str(external[item]),
                    "score": score,
                    "rank": rank,
                    "source": SOURCES[source],
                    "reason": reason(source, item, external[anchor] if anchor >= 0 else None, code),
                    **attributes(item),
                }
                for rank, (item, score, source, anchor, code) in enumerate(shown, start=1)
            ]
            yield {"customer_id": customer_id, "source": SOURCES[routes[row]], "model_version": self.version, "items": items}

    def _external_ids(self) -> list:
        """The products' external ids as a list (a list index is several times cheaper than a numpy
        one for a request's ten items), built on first use: a service's item map never changes."""
        cached = self.__dict__.get("_external_list")
        if cached is None:
            cached = self.__dict__["_external_list"] = self.dataset.items.external_ids.tolist()
        return cached

    def _reason(self, source: int, item: int, anchor_id: str | None, code: int) -> str:
        if source == POPULARITY:
            cached = self._popular_reasons.get(item)
            if cached is None:
                cached = self._popular_reasons[item] = self._popular_reason(item)
            return cached
        verb = VERBS.get(code, "interacted with")
        if source == CONTENT:
            return f"similar to {anchor_id}, which you {verb}" if anchor_id is not None else "similar to products you viewed"
        if anchor_id is not None:
            return f"customers who liked {anchor_id}, which you {verb}, also liked this"
        return "customers with similar taste liked this"

    def _popular_reason(self, item: int) -> str:
        described = self.popularity.reason(item)
        if described is not None:
            return described
        buyers = int(self._purchasers[item])
        return f"popular: bought by {buyers:,} customer{'s' if buyers != 1 else ''}" if buyers else "popular"

    def trending(self, n: int = 10, *, window: str = "7d", min_customers: int = 3) -> list[dict]:
        """Products whose share of customers rose most in the last `window` (e.g. `7d`, `12h`) of
        the training history against the whole history; each needs `min_customers` in the window.

        score = (customers in the window / all customers in the window) / (customers overall / all
        customers), with one customer of smoothing: how many times its usual share it now has.
        """
        n, seconds = check_n(n), parse_window(window)
        pairs = self.dataset.pairs
        stamps = pairs["last_ts"].to_numpy()
        if not len(stamps):
            return []
        recent = stamps >= stamps.max() - seconds
        items = pairs["item"].to_numpy()
        in_window = np.bincount(items[recent], minlength=self.dataset.n_items).astype(np.float64)
        overall = np.bincount(items, minlength=self.dataset.n_items).astype(np.float64)
        lift = ((in_window + 1) / (recent.sum() + 1)) / ((overall + 1) / (len(items) + 1))
        allowed = self.shop()[0].allowed
        eligible = (in_window >= min_customers) & (np.asarray(self.dataset.recommendable) if allowed is None else allowed)
        order = np.flatnonzero(eligible)[np.argsort(-lift[eligible], kind="stable")][:n]
        return [
            {
                "product_id": str(self.dataset.items.external_ids[item]),
                "score": round(float(lift[item]), 6),
                "rank": rank,
                "customers": int(in_window[item]),
                "reason": f"trending: {int(in_window[item]):,} customers in the last {window}, {lift[item]:.1f}x its usual share",
                **self._attributes(int(item)),
            }
            for rank, item in enumerate(order.tolist(), start=1)
        ]

    def recently_viewed(self, customer_id: str, n: int = 10) -> list[dict]:
        """The products a customer interacted with, newest first (training history and live events),
        each with its strongest event, when it last happened and whether it is available now; [] for
        an unknown customer. A history, so unavailable products stay (marked); hidden ones do not."""
        n = check_n(n)
        read = self._read(str(customer_id), ())  # one round trip: events, controls, hide list
        shop, hidden = read.shop, read.hidden
        _, history, _ = self.history_for(str(customer_id), live_rows=read.live_rows, forgotten=read.forgotten)
        # a UserHistory's matrices share one sparsity pattern: entry j is the same product in each
        items, stamps = history.last_seen.indices, history.last_seen.data
        order = np.lexsort((items, -stamps))
        order = order[~np.isin(items[order], hidden)][:n] if len(hidden) else order[:n]
        codes = history.strongest.data[order].astype(np.int64) - 1
        result = []
        for rank, (item, stamp, code) in enumerate(zip(items[order].tolist(), stamps[order].tolist(), codes.tolist()), start=1):
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(stamp))
            result.append(
                {
                    "product_id": str(self.dataset.items.external_ids[item]),
                    "rank": rank,
                    "last_seen": when,
                    "event": EVENT_TYPES[code],
                    "available": shop.is_available(item),
                    "reason": f"you {VERBS[code]} this on {when[:10]}",
                    **self._attributes(item),
                }
            )
        return result

    def similar(self, product_id: str, n: int = 10) -> list[dict]:
        """Products most similar to `product_id` (content similarity, precomputed neighbours)."""
        n = check_n(n)
        item = self._item(product_id)
        unavailable = self.shop()[0].unavailable
        ids, scores = self.content.similar_items(np.array([item]), k=n if unavailable is None else max(n, self.content.neighbour_count()))
        valid = ids[0] >= 0
        if unavailable is not None:
            valid &= ~unavailable[np.maximum(ids[0], 0)]
            valid &= np.cumsum(valid) <= n
        return [
            {"product_id": str(pid), "score": round(float(score), 6), "rank": rank, **self._attributes(int(item))}
            for rank, (pid, item, score) in enumerate(
                zip(self.dataset.items.to_external(ids[0][valid]), ids[0][valid], scores[0][valid]), start=1
            )
        ]

    def bought_together(self, product_id: str, n: int = 10) -> list[dict]:
        """Products bought in the same basket (one customer, one calendar day) as `product_id`, most
        shared baskets first, each seen together at least `bought_together.min_support` times;
        unavailable products left out."""
        n = check_n(n)
        item = self._item(product_id)
        if self.together is None:
            raise ArtifactError(f"model version {self.version} has no bought-together table: retrain with this version of recsys")
        unavailable = self.shop()[0].unavailable
        ids, support, confidence = self.together.together(np.array([item]), k=self.together.neighbours)
        ids, support, confidence = ids[0], support[0], confidence[0]
        keep = ids >= 0
        if unavailable is not None:
            keep &= ~unavailable[np.maximum(ids, 0)]
        chosen = np.flatnonzero(keep)[:n]
        return [
            {
                "product_id": str(self.dataset.items.external_ids[other]),
                "score": round(float(confidence[j]), 6),
                "rank": rank,
                "baskets": int(support[j]),
                "reason": f"bought with {product_id} on the same day {int(support[j]):,} times",
                **self._attributes(int(other)),
            }
            for rank, (j, other) in enumerate(zip(chosen.tolist(), ids[chosen].tolist()), start=1)
        ]

    def similarity(self, a: str, b: str) -> dict:
        """Similarity of two products with its per-feature parts."""
        parts = self.content.similarity(self._item(a), self._item(b))
        return {
            "product_id": str(a),
            "other_id": str(b),
            "similarity": round(float(parts["total"]), 6),
            "parts": {k: round(float(v), 6) for k, v in parts.items() if k != "total"},
        }

    def popular(self, n: int = 10) -> list[dict]:
        """The most popular available products."""
        n = check_n(n)
        unavailable = self.shop()[0].unavailable
        if unavailable is None:
            ranking, scores = self.popularity.ranked(n)
        else:
            ranking, scores = self.popularity.ranked(n + int(unavailable.sum()))
            keep = ~unavailable[ranking]
            ranking, scores = ranking[keep][:n], scores[keep][:n]
        return [
            {
                "product_id": str(pid),
                "score": round(float(score), 6),
                "rank": rank,
                "source": SOURCES[POPULARITY],
                "reason": self._reason(POPULARITY, int(item), None, -1),
                "purchasers": int(self._purchasers[item]),
                **self._attributes(int(item)),
            }
            for rank, (pid, item, score) in enumerate(zip(self.dataset.items.to_external(ranking), ranking, scores), start=1)
        ]

    def _attributes(self, item: int) -> dict:
        """The catalog's brand, category path and price of a product, where known (cached)."""
        cached = self._attribute_cache.get(item)
        if cached is None:
            cached = {}
            for name, values in self._attribute_columns.items():
                value = values[item]
                if value is not None and value == value and value != "":  # value == value: not NaN
                    cached[name] = value
            self._attribute_cache[item] = cached
        return cached

    def product(self, product_id: str) -> dict:
        """Catalog attributes of a product (empty values left out)."""
        item = self.dataset.items.get(str(product_id))
        if item < 0:
            return {}
        row = self._catalog.iloc[item]
        return {c: (row[c].item() if hasattr(row[c], "item") else row[c]) for c in CATALOG_OPTIONAL if c in row and not pd.isna(row[c])}

    def _item(self, product_id: str) -> int:
        item = self.dataset.items.get(str(product_id))
        if item < 0:
            raise NotFoundError(f"unknown product '{str(product_id)[:200]}'")
        return item

    def counts(self) -> dict:
        return {"customers": self.dataset.n_users, "products": self.dataset.n_items, "pairs": int(len(self.dataset.pairs))}


_NO_ITEMS = np.zeros(0, dtype=np.int64)


class _Read(NamedTuple):
    """What one request read from the live store (`RecommendationService._read`)."""

    live_rows: list[tuple[str, int, int]]
    shop: ShopState
    hidden: np.ndarray
    forgotten: bool


def _with_hidden(exclude: sparse.csr_matrix, hidden: sparse.csr_matrix) -> sparse.csr_matrix:
    """Exclusions with the products customers asked never to see (rows aligned) added."""
    return ((exclude + hidden) > 0).astype(np.int8).tocsr()


def _session_pool(k: int) -> int:
    """Candidates the warm model proposes for a session's re-ranking of k."""
    return max(4 * k, 50)


def _best_per_item(ids: np.ndarray, scores: np.ndarray, items: np.ndarray) -> np.ndarray:
    """For each of `items`, the highest of `scores` given to it in (`ids`, `scores`) pairs (-1 ids
    ignored); 0.0 for items that have none."""
    valid = ids >= 0
    ids, scores = ids[valid], scores[valid].astype(np.float64)
    order = np.lexsort((-scores, ids))  # by id, best score first
    ids, scores = ids[order], scores[order]
    first = np.concatenate(([True], ids[1:] != ids[:-1])) if len(ids) else np.zeros(0, dtype=bool)
    ids, scores = ids[first], scores[first]
    at = np.minimum(np.searchsorted(ids, items), max(len(ids) - 1, 0))
    found = (ids[at] == items) if len(ids) else np.zeros(len(items), dtype=bool)
    return np.where(found, scores[at] if len(ids) else 0.0, 0.0)


def _ids(values: Sequence[str], name: str) -> list[str]:
    """Distinct ids in order: 1 to MAX_BATCH usable strings, or InputError."""
    if isinstance(values, str) or not isinstance(values, Sequence) or not all(isinstance(v, str) for v in values):
        raise InputError(f"{name} must be a list of id strings")
    ids = list(dict.fromkeys(check_ids(values, name)))
    if not 1 <= len(ids) <= MAX_BATCH:
        raise InputError(f"{name} must have 1 to {MAX_BATCH:,} ids, got {len(ids):,}")
    return ids


def _keep(kept: dict, key: Any, mask: np.ndarray) -> None:
    """Keep a filter mask, read-only, in `kept` (emptied when it holds MASKS_KEPT)."""
    mask.setflags(write=False)
    if len(kept) >= MASKS_KEPT:
        kept.clear()
    kept[key] = mask


def _served(
    routed: Routed, codes: np.ndarray, n: int, unavailable: np.ndarray | None, hidden: np.ndarray
) -> tuple[Routed, np.ndarray] | None:
    """A one-customer stored list without unavailable and hidden products, cut to `n`; None when
    fewer than `n` remain (the caller scores instead). O(length of the list)."""
    if unavailable is None and not len(hidden):
        return routed, codes
    ids = routed.ids[0]
    bad = ids < 0
    if unavailable is not None:
        bad |= unavailable[np.maximum(ids, 0)]
    if len(hidden):
        bad |= np.isin(ids, hidden)
    keep = np.flatnonzero(~bad)[:n]
    if len(keep) < n:
        return None
    sources = routed.sources[:, keep]
    route = np.where(sources[:, 0] >= 0, sources[:, 0], routed.route).astype(np.int8)
    return Routed(routed.ids[:, keep], routed.scores[:, keep], sources, routed.anchors[:, keep], route), codes[:, keep]


def _codes(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(code per item, distinct values as a unicode array with "" last for missing values)."""
    codes, values = pd.factorize(column.astype(object), use_na_sentinel=True)
    values = np.asarray([str(v) for v in values] + [""], dtype=str)
    return np.where(codes < 0, len(values) - 1, codes), values


def _rows(history: UserHistory, rows: np.ndarray) -> UserHistory:
    return UserHistory(take_rows(history.weights, rows), take_rows(history.last_seen, rows), take_rows(history.strongest, rows))


@functools.lru_cache(maxsize=MAX_N + 1)
def _blank_row(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A one-row `Routed`'s empty ids, scores, sources and anchors (-1 / -inf) for `k` items, to
    copy: a copy costs a fifth of building each with np.full on a request's path."""
    blanks = (np.full((1, k), -1, dtype=np.int64), np.full((1, k), -np.inf, dtype=np.float32))
    blanks += (np.full((1, k), -1, dtype=np.int8), np.full((1, k), -1, dtype=np.int64))
    for blank in blanks:
        blank.flags.writeable = False
    return blanks


def anchor_codes(strongest: sparse.csr_matrix, anchors: np.ndarray) -> np.ndarray:
    """Strongest event code (0 view, 1 cart, 2 purchase; -1 unknown) of each anchor in its row's history."""
    matrix = strongest.tocsr()
    if not matrix.has_sorted_indices:
        matrix = matrix.sorted_indices()
    found, position = lookup(matrix, np.arange(anchors.shape[0]), anchors)
    if not len(matrix.data):  # nobody has a history: no anchor is found
        return np.full(anchors.shape, -1, dtype=np.int64)
    return np.where(found, matrix.data[position].astype(np.int64) - 1, -1)


def _merge(ids, scores, sources, anchors, rows, new_ids, new_scores, source, new_anchors) -> None:
    """Append new candidates after each row's existing items, skipping duplicates, up to k."""
    k = ids.shape[1]
    for position, row in enumerate(rows):
        current = ids[row]
        filled = int((current >= 0).sum())
        if filled >= k:
            continue
        seen = set(current[:filled].tolist())
        for j, item in enumerate(new_ids[position]):
            if item < 0 or item in seen:
                continue
            ids[row, filled], scores[row, filled], sources[row, filled] = item, new_scores[position, j], source
            anchors[row, filled] = new_anchors[position, j] if new_anchors is not None else -1
            seen.add(int(item))
            filled += 1
            if filled >= k:
                break


def merge_candidates(ids: np.ndarray, scores: np.ndarray, fallback: Callable[[np.ndarray, int], np.ndarray]) -> np.ndarray:
    """Fill the -1 padding of short rows from `fallback(rows, k)` (ids best first), no duplicates."""
    ids = ids.copy()
    rows = np.flatnonzero(ids[:, -1] < 0) if ids.size else np.zeros(0, dtype=np.int64)
    if len(rows):
        k = ids.shape[1]
        extra = fallback(rows, 2 * k)
        sources = np.zeros(ids.shape, dtype=np.int8)
        anchors = np.zeros(ids.shape, dtype=np.int64)
        _merge(ids, scores.copy(), sources, anchors, rows, extra, np.zeros(extra.shape, dtype=np.float32), POPULARITY, None)
    return ids
