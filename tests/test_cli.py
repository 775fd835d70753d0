"""The command line as a user meets it: help everywhere, README coverage, exit codes, batch mode."""

from __future__ import annotations

import csv
import io
import json

import pytest
import typer

from recsys_cli.cli import app

from .conftest import ROOT

COMMANDS = sorted(typer.main.get_command(app).commands)  # every command, so a new one needs help and a README entry


def test_help_lists_every_command(run_cli):
    result = run_cli("--help")
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_help_with_an_example_and_is_in_the_readme(run_cli, command):
    result = run_cli(command, "--help")
    assert result.exit_code == 0
    assert "Example" in result.stdout
    assert f"recsys {command}" in (ROOT / "README.md").read_text()


def test_recommend_json_for_known_and_unknown(sample_artifacts, run_cli):
    _, artifacts = sample_artifacts
    result = run_cli("recommend", "nobody", "-n", "3", "--json", "--artifacts", artifacts)
    assert result.exit_code == 0
    payload = json.loads(result.stdout)
    assert payload["source"] == "popularity" and len(payload["items"]) == 3


def test_recommend_table_shows_catalog_attributes(sample_artifacts, service, run_cli):
    _, artifacts = sample_artifacts
    customer = service.dataset.users.external_ids[0]
    result = run_cli("recommend", customer, "-n", "5", "--artifacts", artifacts)
    assert result.exit_code == 0
    assert "reason" in result.stdout and "brand" in result.stdout


def test_recommend_bad_n_exit_code(sample_artifacts, run_cli):
    result = run_cli("recommend", "x", "-n", "0", "--artifacts", sample_artifacts[1])
    assert result.exit_code == 2
    assert "n must be from 1 to 1000" in result.stderr


def test_recommend_without_artifacts_is_a_clear_error(tmp_path, run_cli):
    result = run_cli("recommend", "x", "--artifacts", tmp_path)
    assert result.exit_code == 1
    assert "recsys train" in result.stderr


def test_batch_jsonl_and_csv(sample_artifacts, service, tmp_path, run_cli):
    _, artifacts = sample_artifacts
    ids = list(service.dataset.users.external_ids[:40]) + ["ghost"]
    source = tmp_path / "ids.txt"
    source.write_text("\n".join(ids) + "\n")
    out = tmp_path / "recs.jsonl"
    result = run_cli("recommend", "--customers-file", source, "-n", "4", "--format", "jsonl", "--output", out, "--artifacts", artifacts)
    assert result.exit_code == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["customer_id"] for line in lines] == ids
    item_keys = {"product_id", "score", "rank", "source", "reason", "brand", "category_path", "price"}
    assert all(len(line["items"]) == 4 and set(line["items"][0]) <= item_keys for line in lines)
    assert all({"product_id", "score", "rank", "source", "reason"} <= set(line["items"][0]) for line in lines)
    assert lines[-1]["source"] == "popularity"
    result = run_cli("recommend", "--customers-file", source, "-n", "2", "--format", "csv", "--artifacts", artifacts)
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 2 * len(ids) and rows[0]["customer_id"] == ids[0]


def test_a_customers_file_that_is_not_utf8_is_a_clear_error_and_a_bom_is_dropped(sample_artifacts, service, tmp_path, run_cli):
    _, artifacts = sample_artifacts
    known = str(service.dataset.users.external_ids[0])
    broken = tmp_path / "ids.txt"
    broken.write_bytes(known.encode() + b"\nabc\n\xed\xa0\x80\n")  # a lone surrogate's bytes on line 3
    result = run_cli("recommend", "--customers-file", broken, "--format", "jsonl", "--artifacts", artifacts)
    assert result.exit_code == 2 and "Traceback" not in result.stderr  # a bad input, as the other InputErrors
    assert "line 3 is not UTF-8 text" in result.stderr and "ids.txt" in result.stderr
    marked = tmp_path / "bom.txt"
    marked.write_bytes(b"\xef\xbb\xbf" + known.encode() + b"\n")  # as some editors save UTF-8
    result = run_cli("recommend", "--customers-file", marked, "--format", "jsonl", "-n", "2", "--artifacts", artifacts)
    assert result.exit_code == 0 and json.loads(result.stdout)["customer_id"] == known
    marked.write_bytes(b"\xef\xbb\xbfc1\nc2\n\xff\n")  # a mark and a bad byte: places counted in the file as it is
    result = run_cli("recommend", "--customers-file", marked, "--format", "jsonl", "--artifacts", artifacts)
    assert result.exit_code == 2 and "line 3 is not UTF-8 text (byte 9:" in result.stderr


def test_similar_and_pair(sample_artifacts, service, run_cli):
    _, artifacts = sample_artifacts
    product = service.dataset.items.external_ids[service.popularity.ranking[0]]
    result = run_cli("similar", product, "-n", "3", "--json", "--artifacts", artifacts)
    assert result.exit_code == 0
    items = json.loads(result.stdout)["items"]
    assert len(items) == 3 and product not in {i["product_id"] for i in items}
    pair = run_cli("similar", product, items[0]["product_id"], "--artifacts", artifacts)
    assert pair.exit_code == 0 and "gender" in pair.stdout


def test_similar_unknown_product_exit_1_names_id(sample_artifacts, run_cli):
    result = run_cli("similar", "NO-SUCH-PRODUCT", "--artifacts", sample_artifacts[1])
    assert result.exit_code == 1
    assert "NO-SUCH-PRODUCT" in result.stderr


def test_bad_config_is_a_clear_error(tmp_path, sample_artifacts, run_cli):
    config = tmp_path / "recsys.toml"
    config.write_text("[router]\nwarm_min_products = 'many'\n")
    result = run_cli("train", "--data", sample_artifacts[0], "--artifacts", tmp_path / "a", "--config", config)
    assert result.exit_code == 2
    assert "router.warm_min_products must be a whole number, got 'many'" in result.stderr


def test_generate_small(tmp_path, run_cli):
    result = run_cli("generate", "--out", tmp_path / "g", "--customers", "50", "--products", "40", "--events", "600", "--seed", "3")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "g" / "events.csv").exists() and (tmp_path / "g" / "catalog.csv").exists()


def test_app_object_is_typer():
    assert app.info.name == "recsys"


def test_version(run_cli):
    from recsys_cli import __version__

    result = run_cli("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"recsys {__version__}"


def test_generate_never_overwrites_without_force(run_cli, tmp_path):
    target = tmp_path / "shop"
    target.mkdir()
    (target / "events.csv").write_text("customer_id,product_id,type,timestamp\nmine,p1,view_product,1700000000\n")
    result = run_cli("generate", "--out", target, "--customers", "20", "--products", "10", "--events", "100")
    assert result.exit_code == 2 and "--force" in result.stderr and "events.csv" in result.stderr
    assert "mine" in (target / "events.csv").read_text(), "the shop's own file is untouched"
    forced = run_cli("generate", "--out", target, "--customers", "20", "--products", "10", "--events", "100", "--force")
    assert forced.exit_code == 0 and "mine" not in (target / "events.csv").read_text()
