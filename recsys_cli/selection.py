"""Model selection on the shop's own data, at train time.

`recsys train` carves a validation split from the training events, fits every candidate on the
older part, scores each one per customer segment (cold / few / warm, by distinct products) on what
customers did next, and returns the winner of each segment:

- cold customers (no history): the best popularity ranking (all-time or trending, by distinct
  customers, interactions or purchasers);
- few and warm customers: the best of the collaborative candidates (item kNN, RP3beta, EASE, ALS),
  each with the best recency decay of the history, optionally blended with that popularity ranking;
  a segment whose best model scores below popularity is sent to popularity.

Validation scores are means over a sample of customers, so a small lead can be noise. The
popularity ranking that serves a segment on its own is therefore the simplest one (all-time before
trending, longer windows before shorter) that the segment's best does not lead by more than
LEAD_SE standard errors of the paired per-customer difference, on the segment's customers or on
all of them: a trending window must earn its place. Blends use each segment's best-scoring
ranking, and a model must score above every popularity ranking. A blend (a model with a second
model or with popularity: both scored and merged at every request) serves only when it leads, by
more than LEAD_SE standard errors of the paired per-customer difference, the best single model
that scores above the popularity floor (`_serving_candidate`).

The validation split mirrors how a shop is judged (`selection.split`): by default a global cutoff
at 80% of the events by time (what customers do next), or each customer's last product
when timestamps carry no global time (absent, constant, or per-customer positions, as in review
datasets); `last` asks for the second everywhere. The two can choose differently: trending
products and models fitted on the newest events win what comes after a shared cutoff, a
customer's own recent products win their next step whenever it came.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from .config import SECTIONS, Settings
from .dataset import Dataset, UserHistory
from .errors import InputError
from .evaluation.metrics import ndcg_at_k
from .evaluation.split import NoSplitError, Split, last_item_split, relevant_truth, temporal_split, truth_matrix
from .models.base import Recommender, Resumes, declares
from .models.blend import BlendModel, combine, typical_best
from .models.popularity import MODES, PopularityModel
from .service import merge_candidates

K = 10
POOL = 50  # candidates each model proposes to a blend (as BlendModel's pool)
SEGMENTS = ("cold", "few", "warm")
LEAD_SE = 2.0  # a lead counts when it exceeds two standard errors (about 98% one-sided confidence)
WINDOWS = (None, 0.25, 0.1, 0.05)  # trending windows tried, as shares of the validation period, simplest first
Progress = Callable[[str], None]
NO_SPLIT = "none"  # Selection.split when no validation split could be made


@dataclass
class Selection:
    """What won, per segment, and the table that shows why."""

    popularity: dict[str, Any]  # PopularityModel keyword arguments
    few: dict[str, Any]  # a model spec (see build_model)
    warm: dict[str, Any]
    split: str = ""
    table: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    # what the chosen models' validation fits learned (`Resumes.state`), by candidate key: the final
    # fit on every event starts from it
    states: dict[str, Any] = field(default_factory=dict, repr=False)

    def resume_state(self, spec: dict[str, Any]) -> Any:
        """The validation fit's state for a single-model spec, or None."""
        return self.states.get(_candidate_key(spec))

    def to_dict(self) -> dict[str, Any]:
        return {
            "popularity": self.popularity,
            "few": self.few,
            "warm": self.warm,
            "split": self.split,
            "table": self.table,
            "seconds": round(self.seconds, 2),
        }


def _candidate_key(spec: dict[str, Any]) -> str:
    """The candidate text a spec came from: `als` or `als:alpha=4`."""
    params = spec.get("params") or {}
    return spec["kind"] + (":" + ",".join(f"{k}={v:g}" for k, v in params.items()) if params else "")


def describe(spec: dict[str, Any]) -> str:
    """A short label for a model spec, e.g. `itemknn(decay 0.5) + 0.25 x popularity (customers)`."""
    if spec["kind"] == "popularity":
        return "popularity"
    text = _candidate_key(spec)
    if spec.get("decay", 1.0) < 1.0:
        text += f"(decay {spec['decay']:g})"
    if spec.get("blend"):
        text += f" + {spec['blend']:g} x popularity ({PopularityModel(**spec['popularity']).label})"
    if spec.get("pair"):
        text += f" + {spec['mix']:g} x {describe(spec['pair'])}"
    return text


def _single(spec: dict[str, Any]) -> bool:
    """A model on its own: not blended with popularity or another model."""
    return not spec.get("blend") and not spec.get("pair")


def build_model(spec: dict[str, Any], settings: Settings) -> Recommender:
    """An unfitted model from a spec {kind, decay, blend, popularity} (kind popularity or content included)."""
    kind = spec["kind"]
    if kind == "popularity":
        return PopularityModel(**spec.get("popularity", {}))
    params = dict(spec.get("params") or {})
    window = params.pop("window", None)
    model = _base_model(kind, settings, params)
    if window is not None:
        from .models.recent import RecentModel

        model = RecentModel(model, float(window))
    if "decay" in spec and hasattr(model, "decay"):
        model.decay = float(spec["decay"])
    return model


def wrap_blend(
    model: Recommender, spec: dict[str, Any], popularity: PopularityModel, calibration: tuple[np.ndarray, UserHistory]
) -> Recommender:
    """The fitted `model` blended with the fitted `popularity` (the spec's ranking) when the spec asks for it,
    calibrated on `calibration` (users, their history)."""
    weight = float(spec.get("blend") or 0.0)
    return BlendModel(model, popularity, weight).calibrate(*calibration) if weight > 0 else model


def parse_candidate(text: str, settings: Settings) -> tuple[str, dict[str, float]]:
    """`kind` or `kind:key=value,key=value` (a candidate with some of its settings changed)."""
    kind, _, rest = text.partition(":")
    params: dict[str, float] = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        if key == "window":  # any collaborative model: fitted on the newest share of the period
            try:
                params[key] = float(value)
            except ValueError:
                raise InputError(f"selection.candidates: '{text}': window must be a share of the period, e.g. 0.25") from None
            continue
        known = settings[kind] if kind in SECTIONS else {}
        if key not in known or isinstance(known[key], (list, str)):
            raise InputError(f"selection.candidates: '{text}': {kind} has no numeric setting '{key}'")
        try:
            params[key] = type(known[key])(float(value)) if not isinstance(known[key], bool) else value == "true"
        except ValueError:
            raise InputError(f"selection.candidates: '{text}': {key} must be a number") from None
    return kind, params


def _base_model(kind: str, settings: Settings, params: dict[str, Any] | None = None) -> Recommender:
    from .models.itembased import EASEModel, ItemKNNModel, RP3betaModel

    def options(section: str) -> dict[str, Any]:
        return {**settings[section], **(params or {})}

    if kind == "itemknn":
        return ItemKNNModel(**options("itemknn"))
    if kind == "rp3beta":
        return RP3betaModel(**options("rp3beta"))
    if kind == "ease":
        return EASEModel(**options("ease"))
    if kind == "als":
        from .models.als import ALSModel

        return ALSModel(**options("als"))
    if kind == "lightfm":
        import os

        from .models.collaborative import LightFMModel

        params = dict(settings["lightfm"])
        params["num_threads"] = params["num_threads"] or (os.cpu_count() or 1)
        return LightFMModel(**params)
    if kind == "content":
        from .models.content import ContentModel
        from .training import content_config

        return ContentModel(content_config(settings))
    raise InputError(f"unknown model '{kind}' (known: itemknn, rp3beta, ease, als, lightfm, content, popularity)")


def validation_split(events: pd.DataFrame, how: str = "auto") -> Split:
    """`how` (selection.split) temporal: at 80% of events by time; last: each customer's last
    product (see `last_item_split`); auto: temporal, or last when timestamps carry no global time."""
    if how != "auto":
        try:
            return last_item_split(events) if how == "last" else temporal_split(events, test_fraction=0.2)
        except InputError as error:
            raise _split_refused(how, error) from None
    if _positional_time(events):
        return last_item_split(events)
    try:
        return temporal_split(events, test_fraction=0.2)
    except NoSplitError:  # the newest events share one timestamp
        return last_item_split(events)


def _split_refused(how: str, reason: object) -> InputError:
    """The error for a validation split asked for by name that these events cannot give."""
    return InputError(f"selection.split = {how}: {reason}; set selection.split to {'last' if how == 'temporal' else 'temporal'} or auto")


def _positional_time(events: pd.DataFrame) -> bool:
    """True when timestamps are constant or restart per customer (most customers share their first one)."""
    stamps = events["timestamp"]
    if stamps.nunique() <= 1:
        return True
    first = stamps.groupby(events["customer_id"], observed=True).min()
    return len(first) >= 10 and float((first == first.mode().iloc[0]).mean()) > 0.5


def segment_of(distinct: np.ndarray, warm_min: int) -> np.ndarray:
    """cold (0 products), few (1 .. warm_min - 1), warm (>= warm_min), as strings."""
    return np.select([distinct == 0, distinct < warm_min], ["cold", "few"], default="warm")


def select(
    events: pd.DataFrame,
    catalog: pd.DataFrame,
    settings: Settings,
    *,
    build_dataset: Callable[[pd.DataFrame], Dataset],
    progress: Progress | None = None,
) -> Selection:
    """Fit and score the candidates on a validation split of `events`; return each segment's winner."""
    progress = progress or (lambda message: None)
    started = time.perf_counter()
    check_model_names(settings)
    section = settings["selection"]
    router = settings["router"]
    warm_min = int(router["warm_min_products"])
    how = str(section["split"])
    products = int(events["product_id"].nunique())
    try:
        split = validation_split(events, how)
    except InputError as error:  # too few events, or of the wrong shape, to hold any out
        if how != "auto":  # asked for by name: say it cannot be done rather than serve without it
            raise
        progress(f"selection: no validation split: {error}")
        return _unvalidated(settings, str(error), products, started)
    progress(f"selection: validation split ({split.kind}), {len(split.train):,} / {len(split.test):,} events")
    dataset = build_dataset(split.train)
    truth_pairs = relevant_truth(split)
    customers = pd.unique(truth_pairs["customer_id"].astype(object))
    if not len(customers):
        reason = f"no product held out by the {split.kind} split is new to its customer"
        if how != "auto":
            raise _split_refused(how, reason)
        progress(f"selection: {reason}")
        return _unvalidated(settings, reason, products, started)
    users = dataset.users.to_internal(customers)
    full = dataset.history()
    distinct = np.where(users >= 0, np.diff(full.weights.indptr)[np.maximum(users, 0)], 0)
    labels = segment_of(distinct, warm_min)
    rng = np.random.default_rng(int(section["seed"]))
    cap = int(section["max_users"])
    keep = np.concatenate([_sample(rng, np.flatnonzero(labels == s), cap) for s in SEGMENTS])
    customers, users, labels = customers[keep], users[keep], labels[keep]
    truth = truth_matrix(truth_pairs[truth_pairs["customer_id"].isin(pd.Index(customers))], customers, dataset)
    history = _history(full, users)
    seen = sparse.csr_matrix(
        (np.ones(history.weights.nnz, dtype=np.int8), history.weights.indices, history.weights.indptr), shape=history.weights.shape
    )
    rows = {s: np.flatnonzero(labels == s) for s in SEGMENTS}
    table: list[dict[str, Any]] = []

    per_customer: dict[str, dict[str, np.ndarray]] = {}  # candidate -> segment -> NDCG@10 of each customer

    def ndcg(ids: np.ndarray, segment: str, fallback: PopularityModel | None) -> np.ndarray:
        r = rows[segment]
        if fallback is not None:  # short lists are filled from popularity, as the router does
            ids = merge_candidates(
                ids, np.zeros(ids.shape, dtype=np.float32), lambda short, k: fallback.recommend(short, k=k, exclude=seen[r][short])[0]
            )
        return ndcg_at_k(ids, truth[r], K)

    def record(name: str, arrays: dict[str, np.ndarray]) -> dict[str, float]:
        """Keep each customer's score for the standard-error rule; the table shows the means."""
        per_customer.setdefault(name, {}).update(arrays)
        return {s: float(a.mean()) for s, a in arrays.items()}

    def score(name: str, model: Recommender, segments: tuple[str, ...], fallback: PopularityModel | None) -> dict[str, float]:
        result = {}
        for s in segments:
            r = rows[s]
            if len(r):
                result[s] = ndcg(model.recommend(users[r], k=K, exclude=seen[r], history=_history_rows(history, r))[0], s, fallback)
        return record(name, result)

    # blends reuse each model's candidate lists and typical best score across weights
    lists: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
    scales: dict[str, float] = {}

    def candidates(name: str, model: Recommender, segment: str) -> tuple[np.ndarray, np.ndarray]:
        if (name, segment) not in lists:
            r = rows[segment]
            lists[(name, segment)] = model.recommend(users[r], k=POOL, exclude=seen[r], history=_history_rows(history, r))
        return lists[(name, segment)]

    def scale(name: str, model: Recommender) -> float:
        if name not in scales:
            scales[name] = typical_best(model, users, history)
        return scales[name]

    def blended(name: str, parts: list[tuple[str, Recommender]], weight: float, segment: str) -> dict[str, float]:
        if not len(rows[segment]):
            return {}
        (a, left), (b, right) = parts
        ids, _ = combine(candidates(a, left, segment), candidates(b, right, segment), weight, (scale(a, left), scale(b, right)), K)
        return record(name, {segment: ndcg(ids, segment, best_pop)})

    # 1. popularity: the floor for every segment, and what cold customers get
    fixed_pop = _fixed_popularity(settings)
    # trending windows are tried as shares of the validation period and kept as what they measure,
    # a number of days: how fast a shop's demand moves does not depend on how much history it exports
    stamps = split.train["timestamp"].to_numpy(dtype=np.int64)
    span_days = (int(stamps.max()) - int(stamps.min())) / 86_400 if len(stamps) else 0.0
    # a window shorter than the timestamps' resolution (a few minutes of events) is no window
    days = [None] + [round(w * span_days, 3) for w in WINDOWS if w and split.kind == "temporal"]
    days = list(dict.fromkeys(d for d in days if d is None or d > 0))
    pop_options = [fixed_pop] if fixed_pop else [{"mode": m, "window_days": d} for d in days for m in MODES]
    pops = []
    for options in pop_options:
        model = PopularityModel(**options).fit(dataset)
        name = f"popularity ({model.label})"
        result = score(name, model, SEGMENTS, None)
        pops.append((options, model, result))
        table.append({"candidate": name, "role": "popularity", **result})

    def simplest_popularity(segments: tuple[str, ...]) -> tuple[dict[str, Any], PopularityModel, dict[str, float]]:
        """The simplest ranking that the best on these segments' customers does not lead by more than
        noise, neither on them nor on every validation customer (a shift in demand shows in what
        everyone does next, so the larger pool is evidence too)."""

        def scores(p: tuple, among: tuple[str, ...]) -> np.ndarray:
            arrays = per_customer[f"popularity ({p[1].label})"]
            return np.concatenate([arrays[s] for s in among if s in arrays] or [np.zeros(1)])

        best = max(pops, key=lambda p: scores(p, segments).mean())
        return next(p for p in pops if not any(_leads(scores(best, among), scores(p, among)) for among in (segments, SEGMENTS)))

    # cold customers get the ranking that did best on cold customers (on everyone when there are none)
    best_pop_options, best_pop, _ = simplest_popularity(("cold",) if len(rows["cold"]) else SEGMENTS)
    segment_pop = {s: max(pops, key=lambda p, s=s: p[2].get(s, 0.0)) for s in ("few", "warm")}  # for blends and the floor
    progress(f"selection: popularity by {best_pop.label}")

    # 2. collaborative candidates for the few and warm segments
    specs: dict[str, dict[str, Any]] = {}
    results: dict[str, dict[str, float]] = {}
    fitted: dict[str, Recommender] = {}
    kinds = _candidate_kinds(settings)
    decays = [float(d) for d in section["decays"]]
    for candidate in kinds:
        kind, params = parse_candidate(candidate, settings)
        progress(f"selection: fitting {candidate}")
        try:
            model = build_model({"kind": kind, "params": params}, settings).fit(dataset)
        except (MemoryError, InputError) as error:
            table.append({"candidate": candidate, "role": "skipped", "note": str(error)[:200]})
            continue
        for decay in decays if hasattr(model, "decay") else [1.0]:
            if hasattr(model, "decay"):
                model.decay = decay
            spec = {"kind": kind, "decay": decay, **({"params": params} if params else {})}
            fitted[_candidate_key(spec)] = model
            name = describe(spec)
            specs[name], results[name] = spec, score(name, model, ("few", "warm"), best_pop)
            table.append({"candidate": name, "role": "model", **results[name]})

    # 3. blends of each segment's best models with that segment's best popularity ranking
    weights = [float(w) for w in section["blend_weights"]]
    for segment in ("few", "warm"):
        pop_options, pop_model, _ = segment_pop[segment]
        ranked = sorted((n for n in results if segment in results[n] and _single(specs[n])), key=lambda n: -results[n][segment])
        for name in ranked[:2]:
            spec = specs[name]
            model = fitted[_candidate_key(spec)]
            if hasattr(model, "decay"):
                model.decay = spec["decay"]
            for weight in weights:
                blend_spec = {**spec, "blend": weight, "popularity": pop_options}
                blend_name = describe(blend_spec)
                if segment in results.get(blend_name, {}):
                    continue
                specs[blend_name] = blend_spec
                result = blended(blend_name, [(name, model), (f"popularity {pop_model.label}", pop_model)], weight, segment)
                if blend_name in results:  # scored for the other segment already: one row for both
                    results[blend_name].update(result)
                    next(row for row in table if row["candidate"] == blend_name).update(result)
                    continue
                results[blend_name] = result
                table.append({"candidate": blend_name, "role": "blend", **result})

    # 4. blends of each segment's best model with the best model of another kind (for example EASE on
    # the most active products with item kNN, which covers the rest of the catalog)
    for segment in ("few", "warm"):
        ranked = sorted((n for n in results if segment in results[n] and _single(specs[n])), key=lambda n: -results[n][segment])
        if not ranked:
            continue
        first = specs[ranked[0]]
        second = next((specs[n] for n in ranked[1:] if _candidate_key(specs[n]) != _candidate_key(first)), None)
        if second is None:
            continue
        left, right = fitted[_candidate_key(first)], fitted[_candidate_key(second)]
        if hasattr(left, "decay"):
            left.decay = first["decay"]
        if hasattr(right, "decay"):
            right.decay = second["decay"]
        for weight in [float(w) for w in section["pair_weights"]]:
            pair_spec = {**first, "pair": second, "mix": weight}
            pair_name = describe(pair_spec)
            specs[pair_name] = pair_spec
            result = blended(pair_name, [(describe(first), left), (describe(second), right)], weight, segment)
            if pair_name in results:  # the same pair scored for the other segment already: one row for both
                results[pair_name].update(result)
                next(row for row in table if row["candidate"] == pair_name).update(result)
                continue
            results[pair_name] = result
            table.append({"candidate": pair_name, "role": "blend", **result})

    choice = {}
    active = int((np.bincount(dataset.pairs["item"], minlength=dataset.n_items) > 0).sum())
    for segment in ("few", "warm"):
        fixed = _fixed_choice(settings, segment, active, best_pop_options)
        if fixed is not None:
            choice[segment] = fixed
            continue
        scored = [(results[n][segment], n) for n in results if segment in results[n]]
        floor = segment_pop[segment][2].get(segment, 0.0)
        blends = {n for _, n in scored if not _single(specs[n])}
        best_name, passed = _serving_candidate(scored, blends, {n: per_customer[n][segment] for _, n in scored}, floor)
        best_score = results[best_name][segment] if best_name else -1.0
        for row in table:
            if row["candidate"] in passed:
                row.setdefault("within_noise_for", []).append(segment)
        # never send a segment to a model that did worse than popularity on it
        fallback = simplest_popularity((segment,))[0] if len(rows[segment]) else best_pop_options
        choice[segment] = specs[best_name] if best_name and best_score > floor else {"kind": "popularity", "popularity": fallback}
    labels_chosen = {"cold": f"popularity ({best_pop.label})"}
    for segment in ("few", "warm"):
        spec = choice[segment]
        labels_chosen[segment] = (
            f"popularity ({PopularityModel(**spec['popularity']).label})" if spec["kind"] == "popularity" else describe(spec)
        )
    for row in table:
        row["chosen_for"] = [s for s in SEGMENTS if row["candidate"] == labels_chosen[s]]
    segments_sizes = {s: int(len(rows[s])) for s in SEGMENTS}
    chosen = [_candidate_key(part) for spec in choice.values() for part in (spec, spec.get("pair")) if part]
    states = {key: fitted[key].state(dataset) for key in chosen if key in fitted and declares(fitted[key], Resumes)}
    return Selection(
        popularity=best_pop_options,
        few=choice["few"],
        warm=choice["warm"],
        split=f"{split.kind}; validation customers {segments_sizes}",
        table=table,
        seconds=time.perf_counter() - started,
        states=states,
    )


KINDS = ("itemknn", "rp3beta", "ease", "als", "lightfm", "content", "popularity", "item")


def check_model_names(settings: Settings) -> None:
    """Unknown model names are an error before any work, naming the setting."""
    router = settings["router"]
    for key, allowed in (("collaborative", ("auto", *KINDS)), ("few", ("auto", "same", *KINDS))):
        if router[key] not in allowed:
            raise InputError(f"router.{key} must be one of {', '.join(allowed)}, not '{router[key]}'")
    for candidate in settings["selection"]["candidates"]:
        kind, _ = parse_candidate(str(candidate), settings)
        if kind not in KINDS[:5]:
            raise InputError(f"selection.candidates: '{candidate}' is not a model (choose from {', '.join(KINDS[:5])})")


def _serving_candidate(
    scored: list[tuple[float, str]], blends: set[str], customers: dict[str, np.ndarray], floor: float
) -> tuple[str, list[str]]:
    """The candidate that serves a segment ("" when none was scored) and the blends passed over.

    The best-scoring candidate, except that a blend (in `blends`: a model with a second model or
    with popularity; it scores a pool from both and merges them at every request) serves only when
    it leads, by more than LEAD_SE standard errors of the paired per-customer difference
    (`customers`: each candidate's per-customer scores, same customers), the best single model
    that scores above the popularity `floor`; the best-scoring such blend serves, else that single
    model."""
    ranked = sorted(scored, reverse=True)
    if not ranked or ranked[0][1] not in blends:
        return (ranked[0][1] if ranked else ""), []
    single = next((name for value, name in ranked if name not in blends and value > floor), None)
    if single is None:  # nothing cheaper clears popularity: the blend is measured against the floor alone
        return ranked[0][1], []
    passed = []
    for _, name in ranked:
        if name == single:
            break
        if _leads(customers[name], customers[single]):
            return name, passed
        passed.append(name)
    return single, passed


def _leads(a: np.ndarray, b: np.ndarray) -> bool:
    """True when `a` beats `b` (each customer's score, same customers) by more than LEAD_SE standard
    errors of the paired difference; never on fewer than two customers."""
    if len(a) < 2:
        return False
    difference = a - b
    return float(difference.mean()) > LEAD_SE * float(difference.std(ddof=1)) / np.sqrt(len(difference))


def _unvalidated(settings: Settings, reason: str, products: int, started: float) -> Selection:
    """No evidence to choose on: the settings' fixed choices, popularity for the rest (never a model
    that was not shown to beat it)."""
    popularity = _fixed_popularity(settings) or {"mode": MODES[0], "window_days": None}
    choice = {
        segment: _fixed_choice(settings, segment, products, popularity) or {"kind": "popularity", "popularity": popularity}
        for segment in ("few", "warm")
    }
    return Selection(
        popularity=popularity,
        few=choice["few"],
        warm=choice["warm"],
        split=f"{NO_SPLIT}: {reason}",
        seconds=time.perf_counter() - started,
    )


def _fixed_choice(settings: Settings, segment: str, active_items: int, popularity: dict[str, Any]) -> dict[str, Any] | None:
    """The spec serving `segment` when the settings fix it (popularity with `popularity`'s options), else None."""
    fixed = _fixed_segment(settings, segment, active_items)
    if fixed is None:
        return None
    return {**fixed, "popularity": popularity} if fixed["kind"] == "popularity" else fixed


def _fixed_popularity(settings: Settings) -> dict[str, Any] | None:
    section = settings["popularity"]
    if section["mode"] == "auto":
        return None
    return {
        "mode": section["mode"],
        "window_fraction": float(section["window_fraction"]) or None,
        "window_days": float(section["window_days"]) or None,
    }


def _fixed_segment(settings: Settings, segment: str, active_items: int = 0) -> dict[str, Any] | None:
    """A segment's model fixed in settings (router.collaborative for warm, router.few for few), or None."""
    router = settings["router"]
    value = router["collaborative"] if segment == "warm" else router["few"]
    if value == "auto":
        return None
    if value == "same":
        return _fixed_segment(settings, "warm", active_items)
    return fixed_spec(value, settings, active_items)


def fixed_spec(kind: str, settings: Settings, active_items: int = 0) -> dict[str, Any]:
    """The spec for a model named in settings: its own decay setting, no blend."""
    if kind == "item":  # EASE while the products with events fit its budget, else item kNN
        kind = "ease" if active_items <= int(settings["ease"]["max_items"]) else "itemknn"
    spec: dict[str, Any] = {"kind": kind}
    if kind in ("itemknn", "rp3beta", "ease"):
        spec["decay"] = float(settings[kind]["decay"])
    return spec


def _candidate_kinds(settings: Settings) -> list[str]:
    kinds = [str(k) for k in settings["selection"]["candidates"]]
    if _fixed_segment(settings, "few") and _fixed_segment(settings, "warm"):
        return []
    return kinds  # EASE past its max_items models only the most active products; validation says if that is enough


def _sample(rng: np.random.Generator, rows: np.ndarray, cap: int) -> np.ndarray:
    return np.sort(rng.choice(rows, size=cap, replace=False)) if len(rows) > cap else rows


def _history(full: UserHistory, users: np.ndarray) -> UserHistory:
    rows = np.maximum(users, 0)
    keep = sparse.diags((users >= 0).astype(np.float32))

    def take(matrix: sparse.csr_matrix) -> sparse.csr_matrix:
        out = sparse.csr_matrix(keep.astype(matrix.dtype) @ matrix[rows])
        out.eliminate_zeros()
        return out

    return UserHistory(take(full.weights), take(full.last_seen), take(full.strongest))


def _history_rows(history: UserHistory, rows: np.ndarray) -> UserHistory:
    return UserHistory(history.weights[rows], history.last_seen[rows], history.strongest[rows])


def winners(selection: dict[str, Any]) -> list[dict[str, Any]]:
    """Per segment: the chosen candidate, its validation NDCG@10, popularity's and the runner-up's."""
    table = selection.get("table", [])
    out = []
    for segment in SEGMENTS:
        scored = [row for row in table if segment in row]
        chosen = next((row for row in scored if segment in row.get("chosen_for", [])), None)
        if chosen is None:
            continue
        pops = [row[segment] for row in scored if row["role"] == "popularity"]
        others = sorted((row for row in scored if row is not chosen), key=lambda row: -row[segment])
        out.append(
            {
                "segment": segment,
                "chosen": chosen["candidate"],
                "ndcg": chosen[segment],
                "best_popularity": max(pops, default=0.0),
                "runner_up": others[0]["candidate"] if others else None,
                "runner_up_ndcg": others[0][segment] if others else None,
            }
        )
    return out
