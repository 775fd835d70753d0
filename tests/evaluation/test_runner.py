"""`recsys evaluate` end to end on the committed sample."""

from __future__ import annotations

import json

import pytest

from recsys_cli.config import load_settings
from recsys_cli.data.ingest import ingest
from recsys_cli.evaluation.runner import evaluate, make_split

from ..conftest import SAMPLE


@pytest.fixture(scope="module")
def sample_results(tmp_path_factory):
    snapshot = ingest(SAMPLE, tmp_path_factory.mktemp("eval-art"))
    events, catalog = snapshot.events(), snapshot.catalog()
    split = make_split(events)
    results = evaluate(events, catalog, load_settings(environ={}), split=split, ks=(10, 20), seed=7, dataset_summary=snapshot.summary)
    return events, catalog, results


def test_hybrid_and_popularity_beat_random(sample_results):
    _, _, results = sample_results
    models = results["models"]
    assert models["hybrid"]["overall"]["ndcg@10"] > 3 * models["random"]["overall"]["ndcg@10"]
    assert models["popularity"]["overall"]["ndcg@10"] > models["random"]["overall"]["ndcg@10"]
    assert models["hybrid"]["overall"]["recall@20"] > models["popularity"]["overall"]["recall@20"]


def test_every_model_judged_on_the_same_customers(sample_results):
    _, _, results = sample_results
    users = {name: model["overall"]["users"] for name, model in results["models"].items()}
    assert len(set(users.values())) == 1
    assert users["hybrid"] == results["split"]["truth_users"]
    segments = results["models"]["hybrid"]["segments"]
    assert sum(segment["users"] for segment in segments.values()) == users["hybrid"]
    assert set(segments) == {"cold", "few", "warm"}


def test_cold_segment_hybrid_equals_popularity(sample_results):
    """Customers without train history can only get popularity from the router."""
    _, _, results = sample_results
    hybrid = results["models"]["hybrid"]["segments"]["cold"]["ndcg@10"]
    assert hybrid == pytest.approx(results["models"]["popularity"]["segments"]["cold"]["ndcg@10"])


def test_deterministic_given_seed(sample_results):
    events, catalog, results = sample_results
    again = evaluate(events, catalog, load_settings(environ={}), split=make_split(events), ks=(10, 20), seed=7)
    for name in ("random", "hybrid", "popularity"):
        assert again["models"][name]["overall"] == results["models"][name]["overall"]


def test_split_last_holds_out_one_product_per_customer(sample_results):
    events, catalog, _ = sample_results
    split = make_split(events, kind="last")
    results = evaluate(events, catalog, load_settings(environ={}), split=split, ks=(10,))
    assert results["split"]["kind"] == "last"
    assert results["models"]["hybrid"]["overall"]["ndcg@10"] > results["models"]["random"]["overall"]["ndcg@10"]


def test_cli_writes_json_and_html(tmp_path, run_cli):
    out_json, out_html = tmp_path / "eval.json", tmp_path / "eval.html"
    result = run_cli(
        "evaluate", "--data", SAMPLE, "--artifacts", tmp_path / "art", "--k", "5", "--k", "10", "--json", out_json, "--report", out_html
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(out_json.read_text())
    assert payload["ks"] == [5, 10]
    assert {"random", "popularity", "content", "collaborative", "hybrid"} <= set(payload["models"])
    assert payload["split"]["train"]["events"] + payload["split"]["test"]["events"] == payload["dataset"]["events"]
    assert "hybrid" in result.stdout
    html = out_html.read_text()
    assert html.count("data:image/png;base64,") >= 2


def test_cli_rejects_bad_options(tmp_path, run_cli):
    result = run_cli("evaluate", "--data", SAMPLE, "--artifacts", tmp_path / "art", "--relevant", "clicks")
    assert result.exit_code == 2 and "unknown event type 'clicks'" in result.stderr
    result = run_cli("evaluate", "--data", SAMPLE, "--artifacts", tmp_path / "art", "--test-fraction", "1.5")
    assert result.exit_code == 2


@pytest.mark.slow
def test_tune_writes_the_config_that_train_reads(tmp_path, run_cli):
    config = tmp_path / "recsys.toml"
    result = run_cli("evaluate", "--data", SAMPLE, "--artifacts", tmp_path / "art", "--tune", "--config", config, "--k", "10")
    assert result.exit_code == 0, result.output
    tuned = load_settings(config, environ={})
    assert tuned.sources.get("router.collaborative") == str(config)
    assert tuned["router"]["collaborative"] in ("lightfm", "item")
