"""Server fixtures: artifacts trained once per session from a copy of the committed sample."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import jsonschema
import pytest

from recsys_cli.config import load_settings
from recsys_cli.training import train

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(data, artifacts): the sample data copied to a temp folder (live events land there) and a trained version."""
    base = tmp_path_factory.mktemp("server")
    data = base / "data"
    data.mkdir()
    for name in ("events.csv", "catalog.csv"):
        shutil.copy(ROOT / "data" / name, data / name)
    artifacts = base / "artifacts"
    train(data, artifacts, load_settings(environ={}))
    return data, artifacts


def _nullable_to_jsonschema(node: object) -> object:
    """OpenAPI 3.0 `nullable: true` -> JSON Schema `type: [t, "null"]`, recursively."""
    if isinstance(node, dict):
        out = {key: _nullable_to_jsonschema(value) for key, value in node.items() if key != "nullable"}
        if node.get("nullable") and "type" in out:
            out["type"] = [out["type"], "null"]
        return out
    if isinstance(node, list):
        return [_nullable_to_jsonschema(value) for value in node]
    return node


class OpenAPIChecker:
    """Validates responses against the operation's documented schema; records which operations were checked."""

    def __init__(self, spec: dict):
        self.spec = spec
        self.components = _nullable_to_jsonschema(copy.deepcopy(spec["components"]))
        self.seen: set[tuple[str, str]] = set()

    def check(self, response, template: str, method: str = "get") -> None:
        operation = self.spec["paths"][template][method]
        responses = operation["responses"]
        documented = responses.get(str(response.status_code)) or responses.get("default")
        assert documented is not None, f"{method.upper()} {template}: status {response.status_code} is not documented"
        content = documented["content"]
        if response.is_json:
            assert "application/json" in content, f"{template}: JSON returned, {list(content)} documented"
            schema = _nullable_to_jsonschema(content["application/json"]["schema"])
            root = {**schema, "components": self.components}
            jsonschema.Draft7Validator(root, format_checker=jsonschema.FormatChecker()).validate(response.get_json())
        else:
            assert response.mimetype in content, f"{template}: {response.mimetype} returned, {list(content)} documented"
        self.seen.add((template, method))


def copy_artifacts(artifacts: Path, target: Path) -> Path:
    """A private copy of an artifacts folder, for tests that publish or tamper with versions."""
    shutil.copytree(artifacts, target, ignore=shutil.ignore_patterns(".train.lock"))
    return target
