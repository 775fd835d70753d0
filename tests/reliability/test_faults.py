"""Fault injection: SIGKILL at random moments, a crash at each publish step, corruption, concurrent
trains and a full disk. After every fault `current` loads, verifies and serves what it served before
(or a complete new version), and the next `train` succeeds and leaves no temporaries behind."""

from __future__ import annotations

import errno
import json
import multiprocessing
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from recsys_cli import artifacts, fsutil
from recsys_cli.config import load_settings
from recsys_cli.errors import ArtifactError, LiveStoreError, LockError
from recsys_cli.live import LiveStore
from recsys_cli.service import RecommendationService
from recsys_cli.training import train
from tests.results import write_results

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "data"
# Every choice fixed: one cheap fit, no selection. That keeps the fast tier fast, and keeps OpenMP
# (implicit's ALS) out of this process, whose training children are forked: a child forked after
# OpenMP started its threads can hang in its first parallel region.
FAST = {"RECSYS_ROUTER__COLLABORATIVE": "itemknn", "RECSYS_ROUTER__FEW": "same", "RECSYS_POPULARITY__MODE": "customers"}
CRASHED = 9  # exit code of a child that was "killed" at the injected moment


# --- helpers -------------------------------------------------------------------------------------


def recs(path: Path, customers: list[str]) -> dict[str, list[str]]:
    """What `current` serves to a fixed set of customers (load verifies every file)."""
    service = RecommendationService.load(path)
    return {c: [item["product_id"] for item in service.recommend(c, 10)["items"]] for c in customers}


def stray_temps(path: Path) -> list[Path]:
    return [*path.glob("versions/.tmp-*"), *path.glob(".tmp-current-*"), *path.glob("snapshots/.tmp-*")]


def broken_versions(path: Path) -> list[str]:
    """Version directories (not temporaries) that do not verify: a crash must never leave one."""
    broken = []
    for version in (path / "versions").iterdir():
        if version.is_dir() and not version.name.startswith(artifacts.TEMP_PREFIX):
            try:
                artifacts.verify(version)
            except ArtifactError:
                broken.append(version.name)
    return broken


def add_events_file(data: Path, tag: str, rows: int = 20) -> None:
    """A new events*.csv changes the input fingerprint, so the next train ingests again."""
    lines = (SAMPLE / "events.csv").read_text(encoding="utf-8").splitlines()
    start = 1 + (hash(tag) % 1000) * rows
    (data / f"events_extra_{tag}.csv").write_text("\n".join([lines[0], *lines[start : start + rows]]) + "\n", encoding="utf-8")


def cli_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECSYS_")}
    return {**env, **extra, "PYTHONUNBUFFERED": "1"}


def start_train(data: Path, path: Path, env: dict[str, str], log: Path, *extra: str) -> subprocess.Popen:
    with open(log, "w", encoding="utf-8") as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "recsys_cli.cli", "train", "--data", str(data), "--artifacts", str(path), *extra],
            cwd=path.parent,
            env=cli_env(env),
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )


def last_stage(log: Path) -> str:
    stages = [line.split(":", 1)[1].strip() for line in log.read_text(encoding="utf-8").splitlines() if line.startswith("stage:")]
    return stages[-1] if stages else "startup"


def crash_in_child(inject: Callable[[], None], data: Path, path: Path, env: dict[str, str]) -> int:
    """Run `train` in a forked child after `inject()` patched in a crash point; return its exit code."""

    def child() -> None:
        inject()
        try:
            train(data, path, load_settings(environ=env))
        except BaseException:
            os._exit(1)
        os._exit(0)

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(120)
    if process.is_alive():
        process.kill()
        pytest.fail("the training child hung")
    return process.exitcode


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A copy of the committed sample, trained once (fast settings), and what it serves."""
    root = tmp_path_factory.mktemp("faults")
    data, path = root / "data", root / "artifacts"
    shutil.copytree(SAMPLE, data)
    train(data, path, load_settings(environ=FAST))
    service = RecommendationService.load(path)
    customers = [str(c) for c in service.dataset.users.external_ids[:20]] + ["nobody"]
    return data, path, customers, recs(path, customers)


@pytest.fixture
def workspace(base, tmp_path):
    data, path, customers, served = base
    shutil.copytree(data, tmp_path / "data")
    shutil.copytree(path, tmp_path / "artifacts")
    return tmp_path / "data", tmp_path / "artifacts", customers, served


# --- 1. SIGKILL at random moments ----------------------------------------------------------------


def survive_kills(data: Path, path: Path, customers: list[str], *, kills: int, seed: int, env: dict[str, str]) -> dict:
    rng = random.Random(seed)
    log = path.parent / "train.log"
    started = time.perf_counter()
    process = start_train(data, path, env, log)
    work_starts = None  # interpreter start-up and imports are not worth many kills
    while process.poll() is None:
        if work_starts is None and "stage:" in log.read_text(encoding="utf-8"):
            work_starts = time.perf_counter() - started
        time.sleep(0.01)
    assert process.returncode == 0, log.read_text()
    span = time.perf_counter() - started
    work_starts = min(work_starts or 0.0, span)
    served = {artifacts.current_version(path): recs(path, customers)}
    phases: Counter[str] = Counter()
    completed = 0
    for attempt in range(kills):
        before = artifacts.current_version(path)
        settings_env = {**env, "RECSYS_ROUTER__WARM_MIN_PRODUCTS": str(2 + attempt % 6)}
        if attempt % 3 == 0:
            add_events_file(data, f"{seed}-{attempt}")
        process = start_train(data, path, settings_env, log)
        try:
            assert process.wait(timeout=rng.uniform(0.8 * work_starts, 1.05 * span)) == 0, log.read_text()
            completed += 1
            phase = "finished"
        except subprocess.TimeoutExpired:
            process.kill()  # SIGKILL
            process.wait()
            phase = last_stage(log)
        after = artifacts.current_version(path)
        if after == before:
            assert recs(path, customers) == served[before], f"attempt {attempt} (killed in {phase}) changed what is served"
        else:
            assert after not in served, "current went back to an older version"
            served[after] = recs(path, customers)  # a complete new version: it loaded and verified
            phase = "finished" if phase == "finished" else "after pointer switch"
        phases[phase] += 1
        assert not broken_versions(path), f"attempt {attempt} (killed in {phase}) left a version that does not verify"
        outcome = train(data, path, load_settings(environ=settings_env))  # the next train succeeds
        assert artifacts.current_version(path) == outcome.version
        served[outcome.version] = recs(path, customers)
    train(data, path, load_settings(environ=env))
    assert not stray_temps(path), stray_temps(path)
    assert not broken_versions(path)
    return {
        "attempts": kills,
        "killed": kills - completed,
        "completed_before_kill": completed,
        "killed_in": dict(sorted(phases.items())),
        "uninterrupted_run_seconds": round(span, 2),
        "work_starts_at_seconds": round(work_starts, 2),
    }


def test_three_random_kills_leave_current_intact(workspace):
    data, path, customers, _ = workspace
    result = survive_kills(data, path, customers, kills=3, seed=7, env=FAST)
    print(f"\nrandom SIGKILL (fast tier): {json.dumps(result)}")


@pytest.mark.slow
@pytest.mark.reliability
def test_twenty_random_kills_leave_current_intact(workspace):
    data, path, customers, _ = workspace
    started = time.perf_counter()
    result = survive_kills(data, path, customers, kills=20, seed=20240601, env={})
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(f"\nrandom SIGKILL: {json.dumps(result)}")
    write_results("faults.json", {"sigkill": result})


# --- 1b. a crash at each step of ingest and publish, deterministically ---------------------------


def _exit_on_call(module: object, name: str, number: int, *, after: bool = False, when: Callable[..., bool] = lambda *a: True) -> None:
    real = getattr(module, name)
    calls = {"n": 0}

    def patched(*args, **kwargs):
        if when(*args):
            calls["n"] += 1
            if calls["n"] == number:
                if after:
                    real(*args, **kwargs)
                os._exit(CRASHED)
        return real(*args, **kwargs)

    setattr(module, name, patched)


def _during_ingest() -> None:
    import pandas as pd

    _exit_on_call(pd.DataFrame, "to_parquet", 2)  # events written, catalog not


def _delete_one_file_then_die(target, *args, **kwargs) -> None:
    next(Path(target).iterdir()).unlink()
    os._exit(CRASHED)


CRASH_POINTS: dict[str, tuple[Callable[[], None], bool]] = {
    # name: (inject, does the new version become current?)
    "ingest": (_during_ingest, False),
    "writing parts": (lambda: _exit_on_call(artifacts.joblib, "dump", 3), False),
    "after version rename": (lambda: _exit_on_call(artifacts.os, "replace", 1, after=True), False),
    "pointer written, not renamed": (
        lambda: _exit_on_call(artifacts.os, "replace", 1, when=lambda src, dst: Path(dst).name == "current"),
        False,
    ),
    "after pointer switch": (
        lambda: _exit_on_call(artifacts.os, "replace", 1, after=True, when=lambda src, dst: Path(dst).name == "current"),
        True,
    ),
    "deleting an old version": (lambda: setattr(fsutil.shutil, "rmtree", _delete_one_file_then_die), True),
}


@pytest.mark.parametrize("point", list(CRASH_POINTS))
def test_crash_at_each_step_keeps_a_loadable_current(workspace, point):
    data, path, customers, served = workspace
    inject, switched = CRASH_POINTS[point]
    env = {**FAST, "RECSYS_ROUTER__WARM_MIN_PRODUCTS": "4", "RECSYS_ARTIFACTS__KEEP": "1"}
    if point == "ingest":
        add_events_file(data, "crash")
    before = artifacts.current_version(path)
    assert crash_in_child(inject, data, path, env) == CRASHED
    after = artifacts.current_version(path)
    if switched:
        assert after != before
        RecommendationService.load(path)  # the new version is complete
    else:
        assert after == before
        assert recs(path, customers) == served
    assert not broken_versions(path)
    outcome = train(data, path, load_settings(environ=env))
    assert artifacts.current_version(path) == outcome.version
    RecommendationService.load(path)
    assert not stray_temps(path), stray_temps(path)
    assert not broken_versions(path)


# --- 2. corruption of the newest version ---------------------------------------------------------


def _damage(version_dir: Path, kind: str) -> Path:
    target = version_dir / "collaborative.joblib"
    if kind == "flip":
        blob = bytearray(target.read_bytes())
        blob[len(blob) // 2] ^= 0xFF
        target.write_bytes(bytes(blob))
    elif kind == "truncate":
        target.write_bytes(target.read_bytes()[: len(target.read_bytes()) // 3])
    elif kind == "manifest":
        target = version_dir / "manifest.json"
        target.unlink()
    else:
        manifest = json.loads((version_dir / "manifest.json").read_text())
        manifest["files"]["collaborative.joblib"]["sha256"] = "0" * 64
        (version_dir / "manifest.json").write_text(json.dumps(manifest))
    return target


@pytest.mark.parametrize("kind", ["flip", "truncate", "manifest", "checksum"])
def test_corrupt_newest_version_is_refused_and_the_next_train_replaces_it(workspace, run_cli, monkeypatch, kind):
    data, path, customers, served = workspace
    for name, value in FAST.items():
        monkeypatch.setenv(name, value)
    corrupt = artifacts.current_version(path)
    damaged = _damage(path / "versions" / corrupt, kind)

    result = run_cli("recommend", customers[0], "--artifacts", path)
    assert result.exit_code == 1
    assert str(damaged) in result.stderr and "Traceback" not in result.stderr

    # same inputs and settings as the corrupt version: --if-changed must still train
    result = run_cli("train", "--data", data, "--artifacts", path, "--if-changed")
    assert result.exit_code == 0, result.stderr
    assert "Trained version" in result.stdout
    assert artifacts.current_version(path) not in (None, corrupt)
    assert recs(path, customers) == served  # retrained on the same inputs: the same recommendations


# --- 3. two trains at once -----------------------------------------------------------------------


def _both(data: Path, path: Path, *extra: str) -> list[tuple[int, str, str]]:
    logs = [path.parent / f"train-{i}.log" for i in range(2)]
    processes = [start_train(data, path, {**FAST, "RECSYS_ROUTER__WARM_MIN_PRODUCTS": str(3 + i)}, logs[i], *extra) for i in range(2)]
    results = []
    for process, log in zip(processes, logs, strict=True):
        stdout, _ = process.communicate(timeout=300)
        results.append((process.returncode, stdout, log.read_text(encoding="utf-8")))
    return results


def test_train_while_locked_exits_3_naming_wait(workspace, run_cli):
    data, path, _, _ = workspace
    before = artifacts.current_version(path)
    with artifacts.train_lock(path):
        result = run_cli("train", "--data", data, "--artifacts", path)
    assert result.exit_code == LockError.exit_code == 3
    assert "--wait" in result.stderr and "Traceback" not in result.stderr
    assert artifacts.current_version(path) == before


def _versions(path: Path) -> set[str]:
    return {p.name for p in (path / "versions").iterdir() if not p.name.startswith(artifacts.TEMP_PREFIX)}


def test_two_trains_at_once_never_leave_half_versions(workspace):
    data, path, customers, _ = workspace
    before = _versions(path)
    results = _both(data, path)
    codes = sorted(code for code, _, _ in results)
    print(f"\ntwo trains at once: exit codes {codes}")
    assert codes in ([0, 3], [0, 0]), results
    for code, _, stderr in results:
        if code == 3:
            assert "--wait" in stderr and "Traceback" not in stderr
    assert len(_versions(path) - before) == codes.count(0)
    assert artifacts.current_version(path) in _versions(path) - before
    assert not broken_versions(path) and not stray_temps(path)
    recs(path, customers)


@pytest.mark.slow
def test_two_trains_at_once_with_wait_both_publish(workspace):
    data, path, customers, _ = workspace
    before = _versions(path)
    results = _both(data, path, "--wait")
    assert [code for code, _, _ in results] == [0, 0], results
    assert len(_versions(path) - before) == 2
    assert artifacts.current_version(path) in _versions(path) - before
    assert not broken_versions(path) and not stray_temps(path)
    recs(path, customers)


# --- 4. disk full --------------------------------------------------------------------------------


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_disk_full_while_writing_a_version_is_a_one_line_cli_error(workspace, run_cli, monkeypatch):
    data, path, customers, served = workspace
    before = artifacts.current_version(path)
    real_dump, calls = artifacts.joblib.dump, {"n": 0}

    def dump(obj, target, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            real_dump(obj, target, **kwargs)
            Path(target).write_bytes(Path(target).read_bytes()[:1000])  # half written, then the disk is full
            _no_space()
        return real_dump(obj, target, **kwargs)

    monkeypatch.setattr(artifacts.joblib, "dump", dump)
    for name, value in FAST.items():
        monkeypatch.setenv(name, value)
    result = run_cli("train", "--data", data, "--artifacts", path)
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert "Traceback" not in result.stderr and len(errors) == 1, result.stderr
    assert str(path / "versions") in errors[0] and "No space left on device" in errors[0]
    assert artifacts.current_version(path) == before
    assert recs(path, customers) == served
    assert not stray_temps(path) and not broken_versions(path)


def test_disk_full_while_switching_current_keeps_the_old_pointer(workspace, monkeypatch):
    data, path, customers, served = workspace
    before = artifacts.current_version(path)
    real_fsync = fsutil.fsync_file

    def fsync(target):
        if Path(target).name.startswith(f"{fsutil.TEMP_PREFIX}{artifacts.CURRENT}"):
            _no_space()
        real_fsync(target)

    monkeypatch.setattr(fsutil, "fsync_file", fsync)
    with pytest.raises(ArtifactError, match="No space left on device") as error:
        train(data, path, load_settings(environ={**FAST, "RECSYS_ROUTER__WARM_MIN_PRODUCTS": "5"}))
    assert str(path / "current") in str(error.value)
    assert artifacts.current_version(path) == before
    assert recs(path, customers) == served
    assert not list(path.glob(".tmp-current-*")) and not broken_versions(path)


def _mount_tmpfs(folder: Path, size: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")


@pytest.fixture
def tiny_fs(tmp_path):
    """Mount tiny filesystems under tmp_path (root only); unmounted afterwards."""
    mounted = []

    def mount(name: str, size: str) -> Path:
        folder = tmp_path / name
        _mount_tmpfs(folder, size)
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "--lazy", str(folder)], check=False)


def test_really_full_artifacts_filesystem(workspace, tiny_fs, run_cli, monkeypatch):
    data, source, customers, served = workspace
    used = sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
    version = sum(p.stat().st_size for p in (source / "versions" / artifacts.current_version(source)).iterdir())
    path = tiny_fs("full", f"{(used + version // 2) // 1024}k")  # room for what is there and half a version more
    shutil.copytree(source, path, dirs_exist_ok=True)
    before = artifacts.current_version(path)
    for name, value in FAST.items():
        monkeypatch.setenv(name, value)
    result = run_cli("train", "--data", data, "--artifacts", path)
    assert result.exit_code == 1, result.stdout
    assert "No space left on device" in result.stderr and str(path) in result.stderr and "Traceback" not in result.stderr
    assert artifacts.current_version(path) == before
    assert recs(path, customers) == served
    assert not stray_temps(path) and not broken_versions(path)


class _FullDuringBatch:
    """A connection whose disk fills up half-way through an insert batch."""

    def __init__(self, connection: sqlite3.Connection):
        self._connection = connection

    def executemany(self, sql, rows):
        rows = list(rows)
        self._connection.executemany(sql, rows[: len(rows) // 2])
        raise sqlite3.OperationalError("database or disk is full")

    def __getattr__(self, name):
        return getattr(self._connection, name)


def _batch(start: int, size: int = 10) -> list[tuple[str, str, int, int]]:
    return [(f"c{i}", f"p{i % 7}", 0, 1_700_000_000 + i) for i in range(start, start + size)]


def test_live_store_disk_full_mid_batch_keeps_only_acknowledged_events(tmp_path):
    store = LiveStore(tmp_path / "live.sqlite")
    acknowledged = store.append(_batch(0)) + store.append(_batch(10))
    store._local.connection = _FullDuringBatch(store._connection())
    with pytest.raises(LiveStoreError, match="disk is full") as error:
        store.append(_batch(20))
    assert str(tmp_path / "live.sqlite") in str(error.value) and "nothing was written" in str(error.value)
    fresh = LiveStore(tmp_path / "live.sqlite")
    assert fresh.count() == acknowledged == 20
    assert fresh.watermark() == (20, 20)
    assert list(fresh.to_frame()["customer_id"]) == [f"c{i}" for i in range(20)]


def test_live_store_on_a_really_full_filesystem(tiny_fs):
    path = tiny_fs("live", "256k") / "live.sqlite"  # the WAL index alone takes 32k
    store, acknowledged = LiveStore(path), 0
    with pytest.raises(LiveStoreError) as error:
        for start in range(0, 1_000_000, 50):
            acknowledged += store.append(_batch(start, 50))
    assert str(path) in str(error.value)
    print(f"\nlive store on a 256k tmpfs: {acknowledged} events acknowledged before: {error.value}")
    assert acknowledged > 0
    store.close()
    fresh = LiveStore(path)
    assert fresh.count() == acknowledged  # every acknowledged event, no partial batch
    assert list(fresh.to_frame()["customer_id"]) == [f"c{i}" for i in range(acknowledged)]
    fresh.close()
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
