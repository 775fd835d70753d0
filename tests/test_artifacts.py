"""Versioned artifacts: round trip, crash safety, tamper refusal, the lock, --if-changed."""

from __future__ import annotations

import json
import shutil
import threading

import pytest

from recsys_cli import artifacts
from recsys_cli.config import load_settings
from recsys_cli.errors import ArtifactError, LockError
from recsys_cli.service import RecommendationService
from recsys_cli.training import train


@pytest.fixture
def trained_copy(sample_artifacts, tmp_path):
    data, source = sample_artifacts
    target = tmp_path / "artifacts"
    shutil.copytree(source, target)
    return data, target


def recs(path, customers=("100000", "nobody")):
    service = RecommendationService.load(path)
    ids = list(service.dataset.users.external_ids[:20]) + list(customers)
    return {c: [i["product_id"] for i in service.recommend(c, 10)["items"]] for c in ids}


def test_manifest_records_what_was_trained(sample_artifacts):
    _, path = sample_artifacts
    version = artifacts.current_version(path)
    manifest = json.loads((path / "versions" / version / "manifest.json").read_text())
    assert manifest["format_version"] == artifacts.FORMAT_VERSION
    assert set(manifest["files"]) == {
        "dataset.joblib",
        "popularity.joblib",
        "content.joblib",
        "collaborative.joblib",
        "few.joblib",
        "precomputed.joblib",
        "together.joblib",
    }
    assert manifest["settings"]["router"]["collaborative"] == "auto"
    # the selection table says what was tried and what won each segment
    chosen = {segment for row in manifest["selection"]["table"] for segment in row["chosen_for"]}
    assert chosen == {"cold", "few", "warm"}
    assert manifest["collaborative_model"] in ("ease", "itemknn", "rp3beta", "als", "popularity") or "+" in manifest["collaborative_model"]
    assert manifest["counts"]["events"] > 25_000
    assert "numpy" in manifest["versions"] and "collaborative" in manifest["training_seconds"]


def test_save_load_round_trip_gives_identical_recommendations(trained_copy):
    data, path = trained_copy
    before = recs(path)
    loaded = artifacts.load(path)
    artifacts.publish(path, loaded.parts, {k: v for k, v in loaded.manifest.items() if k not in ("files", "version", "format_version")})
    assert recs(path) == before


def test_crash_mid_write_leaves_previous_version_live(trained_copy, monkeypatch):
    data, path = trained_copy
    before_version = artifacts.current_version(path)
    before = recs(path)
    calls = {"n": 0}
    real_dump = artifacts.joblib.dump

    def failing_dump(obj, target, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        return real_dump(obj, target, **kwargs)

    monkeypatch.setattr(artifacts.joblib, "dump", failing_dump)
    with pytest.raises(OSError):
        train(data, path, load_settings(environ={}, overrides={"router": {"warm_min_products": 3}}))
    monkeypatch.undo()
    assert artifacts.current_version(path) == before_version
    assert recs(path) == before
    assert not list((path / "versions").glob(".tmp-*"))


def test_crash_before_pointer_switch_keeps_old_current(trained_copy, monkeypatch):
    data, path = trained_copy
    before_version = artifacts.current_version(path)

    def die(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(artifacts, "switch_current", die)
    with pytest.raises(KeyboardInterrupt):
        train(data, path, load_settings(environ={}, overrides={"router": {"warm_min_products": 4}}))
    monkeypatch.undo()
    assert artifacts.current_version(path) == before_version
    RecommendationService.load(path)  # still verifies and loads
    outcome = train(data, path, load_settings(environ={}, overrides={"router": {"warm_min_products": 4}}))
    assert artifacts.current_version(path) == outcome.version


@pytest.mark.parametrize("damage", ["flip", "truncate", "manifest", "checksum"])
def test_tampered_or_corrupt_version_is_refused_naming_the_file(trained_copy, damage):
    _, path = trained_copy
    version_dir = path / "versions" / artifacts.current_version(path)
    target = version_dir / "collaborative.joblib"
    if damage == "flip":
        blob = bytearray(target.read_bytes())
        blob[len(blob) // 2] ^= 0xFF
        target.write_bytes(bytes(blob))
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[:100])
    elif damage == "manifest":
        (version_dir / "manifest.json").unlink()
        target = version_dir / "manifest.json"
    else:
        manifest = json.loads((version_dir / "manifest.json").read_text())
        manifest["files"]["collaborative.joblib"]["sha256"] = "0" * 64
        (version_dir / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError) as error:
        RecommendationService.load(path)
    assert str(target) in str(error.value)


def test_missing_artifacts_say_what_to_run(tmp_path):
    with pytest.raises(ArtifactError, match="recsys train"):
        RecommendationService.load(tmp_path)


def test_keeps_the_last_n_versions(trained_copy):
    data, path = trained_copy
    for warm in (3, 4, 5):
        train(data, path, load_settings(environ={}, overrides={"router": {"warm_min_products": warm}, "artifacts": {"keep": 2}}))
    versions = [p for p in (path / "versions").iterdir() if p.is_dir()]
    assert len(versions) == 2
    assert artifacts.current_version(path) in {p.name for p in versions}


def test_second_train_exits_cleanly_while_locked(trained_copy):
    data, path = trained_copy
    with artifacts.train_lock(path):
        with pytest.raises(LockError, match="--wait"):
            train(data, path, load_settings(environ={}))


def test_second_train_waits_with_wait(trained_copy):
    data, path = trained_copy
    release = threading.Event()
    holder = threading.Thread(target=lambda: _hold(path, release))
    holder.start()
    try:
        release.wait(0.1)
        finished = {}
        worker = threading.Thread(
            target=lambda: finished.setdefault(
                "v", train(data, path, load_settings(environ={"RECSYS_ROUTER__WARM_MIN_PRODUCTS": "6"}), wait=True).version
            )
        )
        worker.start()
        worker.join(0.5)
        assert worker.is_alive()  # waiting behind the lock holder
    finally:
        release.set()
        holder.join()
    worker.join(60)
    assert artifacts.current_version(path) == finished["v"]


def _hold(path, release):
    with artifacts.train_lock(path):
        release.wait(2.0)


def test_if_changed_skips_when_nothing_changed(trained_copy, run_cli):
    data, path = trained_copy
    settings = load_settings(environ={})
    first = train(data, path, settings)
    again = train(data, path, settings, if_changed=True)
    assert again.skipped and again.version == first.version
    result = run_cli("train", "--data", data, "--artifacts", path, "--if-changed")
    assert result.exit_code == 0 and "Nothing to do" in result.stdout
    changed = train(data, path, load_settings(environ={}, overrides={"router": {"warm_min_products": 7}}), if_changed=True)
    assert not changed.skipped
