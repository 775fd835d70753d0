"""Schemathesis fuzzing of the REST API from its own OpenAPI document, in-process through the WSGI app.

Every operation gets positive (schema-valid) and negative (schema-violating) requests. Every answer
must be: no 5xx, a documented status code, the documented content type, a body that matches the
documented schema; and a request that violates the document must be rejected with a 4xx.
The fast tier sends about 100 requests, the slow tier at least 1,000.
"""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi import checks as openapi_checks

from recsys_cli.server import create_app
from tests.conftest import train_copy
from tests.server.conftest import timestamps_pass

TOKEN = "fuzz-token"
SKIPPED = {("POST", "/admin/train")}  # would start a real training run per example
CHECKS = [
    schemathesis.checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.response_schema_conformance,
    openapi_checks.negative_data_rejection,
]


@pytest.fixture(scope="module")
def schema(tmp_path_factory):
    """The OpenAPI schema bound to a fresh app over a copy of the sample (live events land in the copy)."""
    data, artifacts = train_copy(tmp_path_factory.mktemp("fuzz"), {"RECSYS_ROUTER__COLLABORATIVE": "itemknn"})
    app = create_app({"ARTIFACTS": artifacts, "DATA": data, "POLL_SECONDS": 0, "ADMIN_TOKEN": TOKEN})
    return schemathesis.openapi.from_wsgi("/openapi.json", app)


def run_operation(operation, mode: GenerationMode, examples: int, sent: Counter) -> None:
    """Up to `examples` generated requests to one operation; raises schemathesis' failure group on a violation."""
    label = (mode.value, operation.method.upper(), operation.path)

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=examples, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    def check(case):
        query = case.query or {}
        if mode is GenerationMode.POSITIVE and "min_price" in query and "max_price" in query:
            assume(float(query["min_price"]) <= float(query["max_price"]))  # min > max: a 400 a schema cannot express
        if mode is GenerationMode.POSITIVE:
            assume(timestamps_pass(case))  # "not after now + 1 day" and "one unit per request": 400s a schema cannot express
        sent[label] += 1
        case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=CHECKS)

    check()


def fuzz(schema, examples: int) -> Counter:
    """Every operation in both generation modes; the number of requests per (mode, method, path)."""
    sent: Counter = Counter()
    problems: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                run_operation(operation, mode, examples, sent)
            except Unsatisfiable:
                # no invalid value fits: only path parameters whose one violation (empty) cannot be sent, or none at all
                assert mode is GenerationMode.NEGATIVE, f"no valid request for {operation.method.upper()} {operation.path}"
            except KeyboardInterrupt:
                raise
            except BaseException as error:  # schemathesis raises a (base) exception group of failures
                problems.append(f"{mode.value} {operation.method.upper()} {operation.path}: {type(error).__name__}: {error}")
    assert not problems, "\n\n".join(problems)
    return sent


def test_fuzz_api_fast(schema):
    sent = fuzz(schema, examples=6)
    total = sum(sent.values())
    print(f"\nschemathesis fast tier: {total} requests")
    assert total >= 100


@pytest.mark.slow
@pytest.mark.reliability
def test_fuzz_api_thorough(schema):
    sent = fuzz(schema, examples=80)
    total = sum(sent.values())
    print(f"\nschemathesis slow tier: {total} requests over {len({k[1:] for k in sent})} operations")
    for key, count in sorted(sent.items()):
        print(f"  {count:5d} {' '.join(key)}")
    assert total >= 1000
