"""One output contract: every command prints the formats it accepts in one shape, refuses the others
with exit 2, and its JSON items carry the same fields as the REST API's."""

from __future__ import annotations

import csv
import io
import json
import shutil

import numpy as np
import pytest

from recsys_cli.cli import OutputFormat

from .conftest import SAMPLE

FORMATS = [f.value for f in OutputFormat]
RECOMMEND_KEYS = {"customer_id", "source", "model_version", "items"}


@pytest.fixture(scope="module")
def shop(sample_artifacts, service, tmp_path_factory):
    """Paths and ids every command needs: data, artifacts, a customers file, a product and its neighbour."""
    data, artifacts = sample_artifacts
    base = tmp_path_factory.mktemp("formats")
    ids = base / "ids.txt"
    ids.write_text("\n".join([*service.dataset.users.external_ids[:3], "ghost"]) + "\n")
    product = str(service.dataset.items.external_ids[service.popularity.ranking[0]])
    other = service.similar(product, 1)[0]["product_id"]
    regular = str(service.dataset.users.external_ids[int(np.argmax(np.diff(service.dataset.interactions.indptr)))])
    return {"data": data, "artifacts": artifacts, "ids": ids, "product": product, "other": other, "base": base, "regular": regular}


def _args(command: str, shop: dict, tmp_path) -> list:
    a = shop["artifacts"]
    small = ["--customers", "30", "--products", "20", "--events", "300"]
    fast = ["--collaborative", "popularity", "--few", "popularity"]
    return {
        "recommend": ["recommend", "nobody", "-n", "3", "--artifacts", a],
        "recommend-batch": ["recommend", "--customers-file", shop["ids"], "-n", "2", "--artifacts", a],
        "similar": ["similar", shop["product"], "-n", "3", "--artifacts", a],
        "similar-pair": ["similar", shop["product"], shop["other"], "--artifacts", a],
        "trending": ["trending", "-n", "3", "--window", "3650d", "--artifacts", a],
        "recently-viewed": ["recently-viewed", shop["regular"], "-n", "3", "--artifacts", a],
        "generate": ["generate", "--out", tmp_path / "g", *small],
        "ingest": ["ingest", "--data", shop["data"], "--artifacts", tmp_path / "ingest"],
        "train": ["train", "--data", shop["data"], "--artifacts", tmp_path / "train", *fast],
        "evaluate": ["evaluate", "--data", shop["data"], "--artifacts", tmp_path / "eval", "--k", "5"],
    }[command]


ACCEPTS = {
    "recommend": FORMATS,
    "recommend-batch": ["json", "jsonl", "csv"],
    "similar": FORMATS,
    "similar-pair": FORMATS,
    "trending": FORMATS,
    "recently-viewed": FORMATS,
    "generate": ["table", "json"],
    "ingest": ["table", "json"],
    "train": ["table", "json"],
    "evaluate": ["table", "json"],
}
SLOW = {"train", "evaluate"}


def _check_shape(command: str, fmt: str, stdout: str) -> None:
    """What a user (or a program) reading stdout would rely on."""
    if fmt == "table":
        assert "┃" in stdout or "│" in stdout or "Split:" in stdout, stdout[:300]
        with pytest.raises(json.JSONDecodeError):
            json.loads(stdout)
        return
    if fmt == "json":
        payload = json.loads(stdout)
        expected = {
            "recommend": RECOMMEND_KEYS,
            "similar": {"product_id", "model_version", "items"},
            "similar-pair": {"product_id", "other_id", "similarity", "parts", "model_version"},
            "trending": {"window", "model_version", "items"},
            "recently-viewed": {"customer_id", "model_version", "items"},
            "generate": {"events", "customers", "products", "by_type", "pairs"},
            "ingest": {"fingerprint", "reused", "summary", "rejected"},
            "train": {"version", "skipped", "seconds", "segments"},
            "evaluate": {"split", "models", "ks"},
        }
        if command == "recommend-batch":
            assert isinstance(payload, list) and len(payload) == 4 and all(set(row) >= RECOMMEND_KEYS for row in payload)
        else:
            assert set(payload) >= expected[command], sorted(payload)
        return
    if fmt == "jsonl":
        lines = [json.loads(line) for line in stdout.splitlines()]
        assert len(lines) == (4 if command == "recommend-batch" else 1)
        key = "items" if command != "similar-pair" else "similarity"
        assert all(key in line and "model_version" in line for line in lines)
        return
    rows = list(csv.DictReader(io.StringIO(stdout)))
    if command == "similar-pair":
        assert len(rows) == 1 and {"product_id", "other_id", "similarity"} <= set(rows[0])
    elif command == "similar":
        assert len(rows) == 3 and {"similar_to", "rank", "product_id", "score"} <= set(rows[0])
    elif command == "trending":
        assert len(rows) == 3 and {"rank", "product_id", "score", "customers"} <= set(rows[0])
    elif command == "recently-viewed":
        assert len(rows) == 3 and {"customer_id", "rank", "product_id", "last_seen", "event"} <= set(rows[0])
    else:
        assert len(rows) == (2 * 4 if command == "recommend-batch" else 3)
        assert {"customer_id", "rank", "product_id", "score", "source", "reason", "model_version"} <= set(rows[0])


CASES = [
    pytest.param(command, fmt, marks=[pytest.mark.slow] if command in SLOW and fmt == "table" else [], id=f"{command}-{fmt}")
    for command in ACCEPTS
    for fmt in FORMATS
]


@pytest.mark.parametrize(("command", "fmt"), CASES)
def test_every_command_prints_each_format_it_accepts_and_refuses_the_rest(command, fmt, shop, run_cli, tmp_path):
    result = run_cli(*_args(command, shop, tmp_path), "--format", fmt)
    if fmt not in ACCEPTS[command]:
        assert result.exit_code == 2, result.output
        assert f"--format {fmt} does not apply" in result.stderr
        return
    assert result.exit_code == 0, result.stderr
    _check_shape(command, fmt, result.stdout)


def test_json_flag_is_format_json_and_must_agree(shop, run_cli):
    both = run_cli("recommend", "nobody", "--json", "--format", "json", "--artifacts", shop["artifacts"])
    assert both.exit_code == 0 and set(json.loads(both.stdout)) == RECOMMEND_KEYS
    clash = run_cli("recommend", "nobody", "--json", "--format", "csv", "--artifacts", shop["artifacts"])
    assert clash.exit_code == 2 and "contradicts" in clash.stderr


def test_an_input_preset_given_as_format_points_to_input_format(shop, run_cli, tmp_path):
    result = run_cli("ingest", "--data", shop["data"], "--artifacts", tmp_path / "a", "--format", "movielens")
    assert result.exit_code == 2 and "--input-format movielens" in result.stderr


def test_flags_that_do_not_apply_to_batch_mode_are_errors(shop, run_cli):
    viewed = run_cli("recommend", "--customers-file", shop["ids"], "--viewed", shop["product"], "--artifacts", shop["artifacts"])
    assert viewed.exit_code == 2 and "--viewed" in viewed.stderr
    table_to_file = run_cli("recommend", "nobody", "--output", shop["base"] / "x.txt", "--artifacts", shop["artifacts"])
    assert table_to_file.exit_code == 2 and "--output" in table_to_file.stderr


def test_single_and_batch_json_carry_the_same_fields(shop, service, run_cli):
    customer = str(service.dataset.users.external_ids[0])
    single = json.loads(run_cli("recommend", customer, "-n", "2", "--format", "json", "--artifacts", shop["artifacts"]).stdout)
    batch = run_cli("recommend", "--customers-file", shop["ids"], "-n", "2", "--format", "jsonl", "--artifacts", shop["artifacts"])
    line = json.loads(batch.stdout.splitlines()[0])
    assert set(single) == set(line) == RECOMMEND_KEYS
    assert set(single["items"][0]) == set(line["items"][0])
    assert line["model_version"] == single["model_version"] == service.version


def test_cli_json_items_have_the_rest_items_fields(shop, service, run_cli, tmp_path):
    from recsys_cli.server import create_app

    data = tmp_path / "data"
    shutil.copytree(SAMPLE, data)
    client = create_app({"ARTIFACTS": shop["artifacts"], "DATA": data, "POLL_SECONDS": 0}).test_client()
    customer = str(service.dataset.users.external_ids[0])
    for cli_args, path in (
        (["recommend", customer], f"/recommendations/{customer}?n=3"),
        (["recommend", "nobody"], "/recommendations/nobody?n=3"),
        (["similar", shop["product"]], f"/products/{shop['product']}/similar?n=3"),
    ):
        cli = json.loads(run_cli(*cli_args, "-n", "3", "--format", "json", "--artifacts", shop["artifacts"]).stdout)
        rest = client.get(path).get_json()
        assert [set(item) for item in cli["items"]] == [set(item) for item in rest["items"]], path
        assert set(rest) <= set(cli), f"{path}: the CLI drops {set(rest) - set(cli)}"


def test_viewed_unknown_product_is_a_warning_and_ignored(shop, service, run_cli):
    known = shop["product"]
    result = run_cli("recommend", "visitor-9", "--viewed", "NOPE", "--viewed", known, "--format", "json", "--artifacts", shop["artifacts"])
    assert result.exit_code == 0, result.stderr
    assert "NOPE" in result.stderr and "ignored" in result.stderr
    assert json.loads(result.stdout) == service.recommend("visitor-9", 10, viewed=[known])
    only_unknown = run_cli("recommend", "visitor-9", "--viewed", "NOPE", "--format", "json", "--artifacts", shop["artifacts"])
    assert only_unknown.exit_code == 0 and json.loads(only_unknown.stdout)["source"] == "popularity"


def test_if_changed_says_nothing_to_do_once(sample_artifacts, run_cli, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(SAMPLE, data)
    args = ["train", "--data", data, "--artifacts", tmp_path / "a", "--collaborative", "popularity", "--few", "popularity"]
    assert run_cli(*args).exit_code == 0
    again = run_cli(*args, "--if-changed")
    assert again.exit_code == 0
    assert again.stdout.count("Nothing to do") == 1
    assert "unchanged since version" not in again.stderr


def test_write_config_is_checked_before_any_work(shop, run_cli, tmp_path):
    args = ["evaluate", "--data", shop["data"], "--artifacts", tmp_path / "a"]
    without_tune = run_cli(*args, "--write-config", tmp_path / "t.toml")
    assert without_tune.exit_code == 2 and "--tune" in without_tune.stderr
    nowhere = run_cli(*args, "--tune", "--write-config", tmp_path / "missing" / "t.toml")
    assert nowhere.exit_code == 2 and "does not exist" in nowhere.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[router]\nwarm_min_products = 'many'\n")
    invalid = run_cli(*args, "--tune", "--write-config", bad)
    assert invalid.exit_code == 2 and "warm_min_products" in invalid.stderr
    assert not (tmp_path / "a").exists(), "refused before ingest"


@pytest.mark.slow
def test_tune_without_write_config_writes_nothing(shop, run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli("evaluate", "--data", shop["data"], "--artifacts", tmp_path / "a", "--tune", "--k", "10")
    assert result.exit_code == 0, result.stderr
    assert "--write-config" in result.stdout and not list(tmp_path.glob("*.toml"))
