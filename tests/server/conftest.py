"""Server fixtures: artifacts trained once per session from a copy of the committed sample."""

from __future__ import annotations

import copy
import shutil
import time
from pathlib import Path

import jsonschema
import pytest

from recsys_cli.data.events import from_json
from recsys_cli.errors import EventsError

from ..conftest import SAMPLE


@pytest.fixture(scope="session")
def trained(sample_artifacts: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(data, artifacts): the committed sample copied to a temp folder of its own (the server tests' live
    events land there) and the session's version trained on that sample (tests that publish use a copy)."""
    data = tmp_path_factory.mktemp("server") / "data"
    shutil.copytree(SAMPLE, data)
    return data, sample_artifacts[1]


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


def timestamps_pass(case) -> bool:
    """False when an events body breaks only the time rules a schema cannot express (future, mixed units)."""
    if (case.method.upper(), case.path) != ("POST", "/events"):
        return True
    try:
        from_json(case.body, now=time.time())
    except EventsError as error:
        return not error.details or not all(".timestamp:" in detail for detail in error.details)
    return True


def copy_artifacts(artifacts: Path, target: Path) -> Path:
    """A private copy of an artifacts folder, for tests that publish or tamper with versions."""
    shutil.copytree(artifacts, target, ignore=shutil.ignore_patterns(".train.lock"))
    return target
