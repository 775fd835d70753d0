"""Shared fixtures: a tiny canonical dataset written once per session, and the CLI runner."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import settings
from typer.testing import CliRunner

from recsys_cli.cli import app

pytest_plugins = ["tests.postgres"]  # postgres_cluster / postgres_url: a throwaway PostgreSQL server

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data"
SHARED = ROOT.parent / "shared" / "datasets"

EVENTS_HEADER = "customer_id,product_id,type,timestamp\n"

# tests write only to temporary folders: no hypothesis example database in ./.hypothesis
settings.register_profile("recsys", database=None)
settings.load_profile("recsys")


def pytest_configure(config: pytest.Config) -> None:
    """hypothesis's caches (constants, unicode data) in a temporary folder, not ./.hypothesis (set before collection)."""
    from hypothesis.configuration import set_hypothesis_home_dir

    config.hypothesis_home = Path(tempfile.mkdtemp(prefix="recsys-hypothesis-"))
    set_hypothesis_home_dir(config.hypothesis_home)


def pytest_unconfigure(config: pytest.Config) -> None:
    if home := getattr(config, "hypothesis_home", None):
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def run_cli():
    """Invoke `recsys ...` in-process; returns the click Result (exit_code, stdout, stderr)."""
    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return invoke


def train_copy(base: Path, environ: dict[str, str] | None = None) -> tuple[Path, Path]:
    """Copy the committed sample into `base`/data and train it into `base`/artifacts."""
    import shutil

    from recsys_cli.config import load_settings
    from recsys_cli.training import train

    data = base / "data"
    data.mkdir(parents=True, exist_ok=True)
    for name in ("events.csv", "catalog.csv"):
        shutil.copy(SAMPLE / name, data / name)
    artifacts = base / "artifacts"
    train(data, artifacts, load_settings(environ=environ or {}))
    return data, artifacts


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def sample_artifacts(tmp_path_factory):
    """Artifacts trained once per session on a copy of the committed sample (default settings)."""
    import shutil

    from recsys_cli.config import load_settings
    from recsys_cli.training import train

    root = tmp_path_factory.mktemp("sample")
    data = root / "data"
    shutil.copytree(SAMPLE, data)
    artifacts = root / "artifacts"
    train(data, artifacts, load_settings(environ={}))
    return data, artifacts


@pytest.fixture(scope="session")
def service(sample_artifacts):
    from recsys_cli.service import RecommendationService

    return RecommendationService.load(sample_artifacts[1])
