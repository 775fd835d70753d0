"""The shop's controls through the service and the CLI: availability (issue 12)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest

from recsys_cli.config import load_settings
from recsys_cli.data.ingest import ingest
from recsys_cli.errors import DataError, InputError, NotFoundError
from recsys_cli.live import LiveStore, open_live_store
from recsys_cli.privacy import customer_hash
from recsys_cli.rules import parse_rules
from recsys_cli.service import Filters, RecommendationService
from recsys_cli.training import train

from .conftest import SAMPLE

FAST = {"RECSYS_ROUTER__COLLABORATIVE": "itemknn", "RECSYS_ROUTER__FEW": "content"}


def fast_train(data: Path, artifacts: Path) -> None:
    train(data, artifacts, load_settings(environ=FAST))


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> tuple[Path, Path]:
    """(data, artifacts): the committed sample trained with fixed models (no selection: fast)."""
    root = tmp_path_factory.mktemp("shop")
    data = root / "data"
    shutil.copytree(SAMPLE, data, ignore=shutil.ignore_patterns("*.sqlite*"))
    fast_train(data, root / "artifacts")
    return data, root / "artifacts"


@pytest.fixture
def service(shop, tmp_path) -> RecommendationService:
    """The trained version with a fresh, private live store."""
    return RecommendationService.load(shop[1], live=LiveStore(tmp_path / "live.sqlite"))


@pytest.fixture(scope="module")
def warm(shop) -> str:
    events = pd.read_csv(shop[0] / "events.csv", dtype=str)
    return str(events.groupby("customer_id")["product_id"].nunique().sort_values().index[-1])


def ids(items: list[dict]) -> list[str]:
    return [item["product_id"] for item in items]


def every_list(service: RecommendationService, customer: str, anchor: str) -> dict[str, list[str]]:
    return {
        "warm": ids(service.recommend(customer, 10)["items"]),
        "warm, filtered": ids(service.recommend(customer, 10, filters=_brandless())["items"]),
        "unknown": ids(service.recommend("never-seen", 10)["items"]),
        "popular": ids(service.popular(10)),
        "similar": ids(service.similar(anchor, 10)),
        "trending": ids(service.trending(10, window="3650d")),
        "batch": ids(next(iter(service.recommend_many([customer], 10)))["items"]),
    }


def _brandless() -> Filters:
    """A filter every priced product passes: forces the scored path."""
    return Filters(min_price=0.0)


class TestAvailability:
    def test_an_unavailable_product_leaves_every_list_at_the_next_request_and_comes_back(self, service, warm):
        first = service.recommend(warm, 10)["items"][0]["product_id"]
        popular = service.popular(1)[0]["product_id"]
        anchor = next(p for p in ids(service.popular(30)) if first in ids(service.similar(p, 10)) or p != popular)
        before = every_list(service, warm, anchor)
        gone = {first, popular, *before["similar"][:1], *before["trending"][:1]}
        service.set_availability(sorted(gone), False)
        after = every_list(service, warm, anchor)
        for name, listed in after.items():
            assert not gone & set(listed), f"{name} still lists an unavailable product"
            assert len(listed) == len(before[name]), f"{name} lost its length"
        assert all(not service.availability(p)["available"] for p in gone)
        service.set_availability(sorted(gone), True)
        assert every_list(service, warm, anchor) == before

    @pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
    def test_another_process_sees_the_change_at_its_next_request(self, shop, tmp_path, warm, backend, request):
        """Two services on one store stand for two server workers (or replicas): no reload, no retrain."""
        url = f"sqlite://{tmp_path / 'live.sqlite'}" if backend == "sqlite" else request.getfixturevalue("postgres_url")
        writer = RecommendationService.load(shop[1], live=open_live_store(tmp_path, url))
        reader = RecommendationService.load(shop[1], live=open_live_store(tmp_path, url))
        first = reader.recommend(warm, 5)["items"][0]["product_id"]
        writer.set_availability([first], False)
        assert first not in ids(reader.recommend(warm, 5)["items"])

    def test_a_store_file_moved_away_keeps_the_last_availability_and_deletion_list(self, service, warm, tmp_path):
        """An operator moving a broken store file away must not bring back unavailable products or
        forgotten customers' histories: the service keeps the controls it last read."""
        popular = service.recommend("never-seen", 1)["items"][0]["product_id"]
        service.set_availability([popular], False)
        service.forget(warm)
        forgotten = service.recommend(warm, 5)
        assert popular not in ids(service.recommend("never-seen", 10)["items"])
        service.live.close()  # as after a read error: the next read looks for the file again
        (tmp_path / "live.sqlite").rename(tmp_path / "moved-away.sqlite")
        assert popular not in ids(service.recommend("never-seen", 10)["items"])
        assert service.recommend(warm, 5) == forgotten

    def test_recently_viewed_keeps_history_and_marks_it(self, service, warm):
        seen = service.recently_viewed(warm, 3)[0]["product_id"]
        service.set_availability([seen], False)
        items = {item["product_id"]: item for item in service.recently_viewed(warm, 3)}
        assert items[seen]["available"] is False

    def test_unknown_products_and_a_missing_store_are_clear_errors(self, shop):
        with pytest.raises(NotFoundError, match="unknown product 'nope'"):
            RecommendationService.load(shop[1], live=LiveStore(shop[0] / "x.sqlite")).set_availability(["nope"], False)
        with pytest.raises(Exception, match="needs the live store"):
            RecommendationService.load(shop[1]).set_availability(["nope"], False)


def test_the_catalog_column_is_validated_and_an_unavailable_product_still_trains(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(SAMPLE, data, ignore=shutil.ignore_patterns("*.sqlite*"))
    catalog = pd.read_csv(data / "catalog.csv", dtype=str, keep_default_na=False)
    events = pd.read_csv(data / "events.csv", dtype=str)
    best = events["product_id"].value_counts().index[0]
    catalog["available"] = ""
    catalog.loc[catalog["product_id"] == best, "available"] = "no"
    catalog.loc[1, "available"] = "maybe"
    catalog.loc[2, "available"] = "TRUE"
    catalog.to_csv(data / "catalog.csv", index=False)

    snapshot = ingest(data, tmp_path / "a")
    reports = [f"{r.file}:{r.line}: {r.reason}" for r in snapshot.rejects.itertuples()]
    assert "catalog.csv:3: bad available 'maybe' (use true/false, yes/no or 1/0; product kept as available)" in reports
    flags = snapshot.catalog().set_index("product_id")["available"]
    assert flags[best] == False and flags[catalog.loc[1, "product_id"]] == True  # noqa: E712 (numpy bools)
    with pytest.raises(DataError, match="catalog.csv line 3: bad available 'maybe'"):
        ingest(data, tmp_path / "b", strict=True)

    fast_train(data, tmp_path / "artifacts")
    service = RecommendationService.load(tmp_path / "artifacts")
    item = service.dataset.items.get(best)
    assert (service.dataset.pairs["item"] == item).sum() == events.loc[events["product_id"] == best, "customer_id"].nunique()
    assert best not in ids(service.popular(20)) and best not in ids(service.recommend("never-seen", 20)["items"])
    assert not service.availability(best)["available"]


def test_an_override_survives_retraining_and_the_products_events_train_the_next_model(tmp_path, warm):
    data = tmp_path / "data"
    shutil.copytree(SAMPLE, data, ignore=shutil.ignore_patterns("*.sqlite*"))
    fast_train(data, tmp_path / "artifacts")
    service = RecommendationService.load(tmp_path / "artifacts", live=LiveStore.in_folder(data))
    best = service.popular(1)[0]["product_id"]
    service.set_availability([best], False)
    fast_train(data, tmp_path / "artifacts")
    fresh = RecommendationService.load(tmp_path / "artifacts", live=LiveStore.in_folder(data))
    assert fresh.version != service.version
    assert (fresh.dataset.pairs["item"] == fresh.dataset.items.get(best)).sum() > 0
    assert best not in ids(fresh.popular(10)) and best not in ids(fresh.recommend(warm, 20)["items"])


def test_availability_command(shop, tmp_path, run_cli, warm):
    data = tmp_path / "data"
    data.mkdir()
    first = RecommendationService.load(shop[1]).recommend(warm, 3)["items"][0]["product_id"]
    result = run_cli("availability", first, "--off", "--artifacts", shop[1], "--data", data)
    assert result.exit_code == 0 and f"{first}: unavailable" in result.stdout
    result = run_cli("recommend", warm, "-n", "3", "--format", "json", "--artifacts", shop[1], "--data", data)
    assert first not in result.stdout
    result = run_cli("availability", first, "--format", "json", "--artifacts", shop[1], "--data", data)
    assert '"available": false' in result.stdout
    result = run_cli("availability", "no-such-product", "--on", "--artifacts", shop[1], "--data", data)
    assert result.exit_code != 0 and "unknown product 'no-such-product'" in result.stderr


class TestHidden:
    def test_a_hidden_product_never_comes_back_for_that_customer_only(self, service, warm):
        top = ids(service.recommend(warm, 5)["items"])
        seen = service.recently_viewed(warm, 1)[0]["product_id"]
        assert sorted(service.hide(warm, [top[0], top[3], seen])["product_ids"]) == sorted({top[0], top[3], seen})
        lists = {
            "stored": ids(service.recommend(warm, 5)["items"]),
            "long": ids(service.recommend(warm, 200)["items"]),
            "filtered": ids(service.recommend(warm, 20, filters=_brandless())["items"]),
            "session": ids(service.recommend(warm, 20, viewed=[top[1]])["items"]),
            "shuffled": ids(service.recommend(warm, 20, shuffle=3)["items"]),
            "recently viewed": ids(service.recently_viewed(warm, 1000)),
        }
        for name, listed in lists.items():
            assert not {top[0], top[3], seen} & set(listed), name
        assert len(lists["stored"]) == 5 and lists["stored"][:2] == [top[1], top[2]]
        other = service.popular(1)[0]["product_id"]
        service.hide("somebody-else", [other])
        assert ids(service.recommend("never-seen", 1)["items"]) == [other]
        assert other not in ids(service.recommend("somebody-else", 10)["items"])

    def test_hiding_checks_its_input(self, service, warm):
        with pytest.raises(NotFoundError, match="unknown product 'nope'"):
            service.hide(warm, ["nope"])
        with pytest.raises(InputError, match="product_ids must be a list"):
            service.hide(warm, "abc")
        with pytest.raises(InputError, match="product_ids must have 1 to"):
            service.hide(warm, [])


class TestSeveralFilterValues:
    def test_categories_and_brands_take_several_values(self, service, warm):
        catalog = service.dataset.catalog
        tops = catalog["category_path"].dropna().str.split("|").str[0].value_counts().index[:2].tolist()
        result = service.recommend(warm, 30, filters=Filters(category=tuple(tops)))["items"]
        roots = {item["category_path"].split("|")[0] for item in result}
        assert roots == set(tops)
        brands = catalog["brand"].dropna().value_counts().index[:2].tolist()
        result = service.recommend(warm, 30, filters=Filters(brand=tuple(brands)))["items"]
        assert {item["brand"] for item in result} == set(brands)
        assert Filters(brand="A").brand == ("A",) and not Filters(category=("", "")).active()
        shown = ids(result)
        again = service.recommend(warm, 30, filters=Filters(brand=brands, exclude=shown[:2]))["items"]  # lists, as a Python caller may pass
        assert not set(shown[:2]) & set(ids(again)) and len(again) == len(shown)
        assert ids(again)[:10] == shown[2:12]  # the rest keep their order


def test_hide_command_and_repeatable_filters(shop, tmp_path, run_cli, warm):
    data = tmp_path / "data"
    data.mkdir()
    first = RecommendationService.load(shop[1]).recommend(warm, 3)["items"][0]["product_id"]
    result = run_cli("hide", warm, first, "--artifacts", shop[1], "--data", data)
    assert result.exit_code == 0 and f"{warm}: {first}" in result.stdout
    result = run_cli("recommend", warm, "-n", "3", "--format", "json", "--artifacts", shop[1], "--data", data)
    assert first not in result.stdout
    result = run_cli("hide", warm, "--format", "json", "--artifacts", shop[1], "--data", data)
    assert json.loads(result.stdout) == {"customer_id": warm, "product_ids": [first]}
    brands = RecommendationService.load(shop[1]).dataset.catalog["brand"].dropna().value_counts().index[:2].tolist()
    args = ["recommend", warm, "-n", "20", "--format", "json", "--artifacts", shop[1], "--brand", brands[0], "--brand", brands[1]]
    assert {item["brand"] for item in json.loads(run_cli(*args).stdout)["items"]} == set(brands)
    bad = run_cli("recommend", warm, "--min-price", "50", "--max-price", "10", "--artifacts", shop[1])
    assert bad.exit_code == 2 and "--min-price (50.0) is greater than --max-price (10.0)" in bad.stderr


def test_bought_together_returns_the_pair_planted_in_the_data(tmp_path, run_cli):
    data = tmp_path / "data"
    shutil.copytree(SAMPLE, data, ignore=shutil.ignore_patterns("*.sqlite*"))
    catalog = pd.read_csv(data / "catalog.csv", dtype=str)
    events = pd.read_csv(data / "events.csv", dtype=str)
    quiet = catalog.loc[~catalog["product_id"].isin(events["product_id"]), "product_id"].tolist()
    left, right, once = quiet[:3]
    day = 1_700_000_000
    planted = [
        (f"pair-{i}", product, "purchase_item", day + 86_400 * i + 60 * j) for i in range(6) for j, product in enumerate((left, right))
    ]
    planted += [("lonely", left, "purchase_item", day), ("lonely", once, "purchase_item", day + 5)]  # one basket: under min_support
    planted += [("apart", left, "purchase_item", day), ("apart", once, "purchase_item", day + 86_400)]  # another day: no basket
    pd.DataFrame(planted, columns=["customer_id", "product_id", "type", "timestamp"]).to_csv(data / "events-planted.csv", index=False)
    fast_train(data, tmp_path / "artifacts")
    service = RecommendationService.load(tmp_path / "artifacts", live=LiveStore.in_folder(data))

    items = service.bought_together(left, 5)
    assert [item["product_id"] for item in items] == [right]
    assert items[0]["baskets"] == 6 and items[0]["reason"] == f"bought with {left} on the same day 6 times"
    assert ids(service.bought_together(right, 5)) == [left]
    service.set_availability([right], False)
    assert service.bought_together(left, 5) == []

    result = run_cli("bought-together", right, "--format", "json", "--artifacts", tmp_path / "artifacts")
    assert result.exit_code == 0 and json.loads(result.stdout)["items"][0]["product_id"] == left
    result = run_cli("bought-together", "nope", "--artifacts", tmp_path / "artifacts")
    assert result.exit_code == 1 and "unknown product 'nope'" in result.stderr


def test_a_forgotten_customer_is_unknown_at_once_and_absent_from_the_next_snapshot_and_model(tmp_path, run_cli, caplog):
    import logging

    data = tmp_path / "data"
    shutil.copytree(SAMPLE, data, ignore=shutil.ignore_patterns("*.sqlite*"))
    artifacts = tmp_path / "artifacts"
    fast_train(data, artifacts)
    service = RecommendationService.load(artifacts, live=LiveStore.in_folder(data))
    events = pd.read_csv(data / "events.csv", dtype=str)
    customer = str(events["customer_id"].value_counts().index[0])
    service.live.append([(customer, events["product_id"].iloc[0], 0, 1_700_000_000)])
    service.hide(customer, [service.popular(1)[0]["product_id"]])
    assert service.recommend(customer, 5)["source"] != "popularity"

    with caplog.at_level(logging.INFO, logger="recsys.service"):
        result = service.forget(customer)
    assert result == {"customer_hash": customer_hash(customer), "live_events_removed": 1}
    assert customer not in caplog.text and customer_hash(customer) in caplog.text
    assert service.live.for_customer(customer) == [] and service.live.hidden(customer) == []
    answer = service.recommend(customer, 5)
    assert answer["source"] == "popularity" and answer["items"] == service.recommend("never-seen", 5)["items"]
    assert service.recently_viewed(customer, 5) == []
    assert next(iter(service.recommend_many([customer], 5)))["items"] == answer["items"]

    fast_train(data, artifacts)  # ingest and train honour the deletion list
    snapshots = sorted((artifacts / "snapshots").glob("*/events.parquet"), key=lambda path: path.stat().st_mtime)
    newest = pd.read_parquet(snapshots[-1])
    assert (
        customer not in set(newest["customer_id"])
        and len(newest) == len(events.drop_duplicates()) - (events["customer_id"] == customer).sum()
    )
    fresh = RecommendationService.load(artifacts, live=LiveStore.in_folder(data))
    assert fresh.dataset.users.get(customer) < 0

    result = run_cli("ingest", "--data", data, "--artifacts", tmp_path / "again", "--format", "json")
    by_cli = pd.read_parquet(tmp_path / "again" / "snapshots" / json.loads(result.stdout)["fingerprint"][:16] / "events.parquet")
    assert customer not in set(by_cli["customer_id"]) and json.loads(result.stdout)["summary"]["forgotten_events_dropped"] > 0

    later = int(time.time()) + 60  # a returning customer's new events are theirs again
    pd.DataFrame([(customer, events["product_id"].iloc[0], "view_product", later)], columns=events.columns).to_csv(
        data / "events-later.csv", index=False
    )
    snapshot = ingest(data, tmp_path / "third", forgotten=fresh.live.forgotten(), rules=None)
    kept = snapshot.events()
    assert (kept["customer_id"] == customer).sum() == 1 and snapshot.summary["forgotten_events_dropped"] > 0


def test_forget_command(shop, tmp_path, run_cli, warm):
    data = tmp_path / "data"
    data.mkdir()
    result = run_cli("forget", warm, "--format", "json", "--artifacts", shop[1], "--data", data)
    assert result.exit_code == 0 and json.loads(result.stdout)["customer_hash"] == customer_hash(warm)
    result = run_cli("recommend", warm, "--format", "json", "--artifacts", shop[1], "--data", data)
    assert json.loads(result.stdout)["source"] == "popularity"


class TestRules:
    def test_a_boost_in_the_settings_changes_the_order_as_configured(self, shop, tmp_path, warm):
        plain = RecommendationService.load(shop[1]).recommend(warm, 20)["items"]
        brand = next(item["brand"] for item in plain[5:] if "brand" in item and item["brand"] != plain[0].get("brand"))
        data = tmp_path / "data"
        shutil.copytree(shop[0], data, ignore=shutil.ignore_patterns("*.sqlite*"))
        train(data, tmp_path / "artifacts", load_settings(environ={**FAST, "RECSYS_RULES__BOOST": f'["brand:{brand}:4"]'}))
        boosted = RecommendationService.load(tmp_path / "artifacts").recommend(warm, 10)["items"]

        def score(rank: int, item: dict) -> float:
            return (4.0 if item.get("brand") == brand else 1.0) / rank

        expected = [item["product_id"] for _, item in sorted(enumerate(plain, start=1), key=lambda e: (-score(*e), e[0]))][:10]
        assert ids(boosted) == expected and ids(boosted) != ids(plain[:10])
        first = next(i for i, item in enumerate(plain) if item.get("brand") == brand)
        assert next(i for i, item in enumerate(boosted) if item.get("brand") == brand) < first
        assert all(f"shop rule brand {brand}: x4" in item["reason"] for item in boosted if item.get("brand") == brand)
        # the same rule given with one request, on the version without rules, gives the same list
        request = RecommendationService.load(shop[1]).recommend(warm, 10, rules=parse_rules([f"brand:{brand}:4"]))
        assert ids(request["items"]) == ids(boosted)

    def test_a_pin_takes_its_slot_unless_the_customer_may_not_see_it(self, service, warm):
        plain = ids(service.recommend(warm, 10)["items"])
        outside = next(p for p in ids(service.popular(100)) if p not in plain and p not in ids(service.recently_viewed(warm, 1000)))
        pinned = service.recommend(warm, 10, rules=parse_rules(pins=[f"{outside}:2"]))["items"]
        assert ids(pinned)[:3] == [plain[0], outside, plain[1]] and pinned[1]["source"] == "rules"
        assert pinned[1]["reason"] == "featured by the shop (pinned to place 2)"
        moved = service.recommend(warm, 10, rules=parse_rules(pins=[f"{plain[5]}:1"]))["items"]
        assert ids(moved)[0] == plain[5] and ids(moved).count(plain[5]) == 1
        service.hide(warm, [outside])
        assert outside not in ids(service.recommend(warm, 10, rules=parse_rules(pins=[f"{outside}:2"]))["items"])
        bought = service.recently_viewed(warm, 1)[0]["product_id"]  # already interacted with: excluded, so never pinned
        assert bought not in ids(service.recommend(warm, 10, rules=parse_rules(pins=[f"{bought}:1"]))["items"])
        with pytest.raises(NotFoundError, match="unknown product 'nope'"):
            service.recommend(warm, 10, rules=parse_rules(pins=["nope:1"]))

    def test_rules_on_the_command_line(self, shop, run_cli, warm):
        plain = ids(RecommendationService.load(shop[1]).recommend(warm, 5)["items"])
        result = run_cli("recommend", warm, "-n", "5", "--format", "json", "--pin", f"{plain[4]}:1", "--artifacts", shop[1])
        assert ids(json.loads(result.stdout)["items"])[0] == plain[4]
        bad = run_cli("recommend", warm, "--boost", "colour:red:2", "--artifacts", shop[1])
        assert bad.exit_code == 2 and "command line: boost 'colour:red:2' must be FIELD:VALUE:FACTOR" in bad.stderr


def test_batch_mode_with_data_applies_availability_and_forgotten_customers(shop, tmp_path, run_cli, warm):
    data = tmp_path / "data"
    data.mkdir()
    service = RecommendationService.load(shop[1], live=LiveStore.in_folder(data))
    first = service.recommend(warm, 3)["items"][0]["product_id"]
    service.set_availability([first], False)
    (tmp_path / "ids.txt").write_text(f"{warm}\n")
    args = ["recommend", "--customers-file", tmp_path / "ids.txt", "-n", "3", "--artifacts", shop[1]]
    assert first in run_cli(*args).stdout
    assert first not in run_cli(*args, "--data", data).stdout
