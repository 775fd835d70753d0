"""Request metrics in the Prometheus text exposition format 0.0.4, written by hand.

The format is a few lines of text and `prometheus_client` is not a dependency, so this module
keeps three things under one lock: a request counter and a latency histogram per
(endpoint, status), and renders them with the gauges the server passes in. Counters are per
process: with `--workers N` each scrape sees the worker that answered it (its `pid` label tells
which); sum over `pid` in PromQL for totals.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections.abc import Iterable

BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{name}="{_escape(str(value))}"' for name, value in labels.items()) + "}"


def _number(value: float) -> str:
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Metrics:
    """Thread-safe per-process request counters and latency histograms."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str], int] = {}
        self._histograms: dict[str, list[float]] = {}  # endpoint -> bucket counts, then sum, then count
        self.reload_failures = 0

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        """Count one finished request."""
        index = bisect.bisect_left(BUCKETS, seconds)
        with self._lock:
            key = (endpoint, str(status))
            self._requests[key] = self._requests.get(key, 0) + 1
            histogram = self._histograms.setdefault(endpoint, [0.0] * (len(BUCKETS) + 2))
            if index < len(BUCKETS):
                histogram[index] += 1
            histogram[-2] += seconds
            histogram[-1] += 1

    def count_reload_failure(self) -> None:
        with self._lock:
            self.reload_failures += 1

    def render(self, *, model_version: str, live_events: int | None) -> str:
        """The exposition text, ending with a newline."""
        pid = str(os.getpid())
        with self._lock:
            requests = sorted(self._requests.items())
            histograms = {endpoint: list(values) for endpoint, values in sorted(self._histograms.items())}
            reload_failures = self.reload_failures
        lines = [
            "# HELP recsys_requests_total Requests answered by this worker process, by endpoint and status.",
            "# TYPE recsys_requests_total counter",
        ]
        lines += [f"recsys_requests_total{_labels(endpoint=e, status=s, pid=pid)} {n}" for (e, s), n in requests]
        lines += [
            "# HELP recsys_request_seconds Time to answer a request, by endpoint.",
            "# TYPE recsys_request_seconds histogram",
        ]
        for endpoint, values in histograms.items():
            lines += self._histogram_lines(endpoint, pid, values)
        lines += [
            "# HELP recsys_model_info The model version this worker serves (value is always 1).",
            "# TYPE recsys_model_info gauge",
            f"recsys_model_info{_labels(version=model_version, pid=pid)} 1",
            "# HELP recsys_reload_failures_total New model versions this worker refused to load.",
            "# TYPE recsys_reload_failures_total counter",
            f"recsys_reload_failures_total{_labels(pid=pid)} {reload_failures}",
        ]
        if live_events is not None:
            lines += [
                "# HELP recsys_live_events Events stored in the live-event store.",
                "# TYPE recsys_live_events gauge",
                f"recsys_live_events {live_events}",
            ]
        return "\n".join(lines) + "\n"

    @staticmethod
    def _histogram_lines(endpoint: str, pid: str, values: list[float]) -> Iterable[str]:
        cumulative = 0.0
        for bound, count in zip(BUCKETS, values[: len(BUCKETS)], strict=True):
            cumulative += count
            yield f"recsys_request_seconds_bucket{_labels(endpoint=endpoint, pid=pid, le=_number(bound))} {_number(cumulative)}"
        yield f"recsys_request_seconds_bucket{_labels(endpoint=endpoint, pid=pid, le='+Inf')} {_number(values[-1])}"
        yield f"recsys_request_seconds_sum{_labels(endpoint=endpoint, pid=pid)} {values[-2]!r}"
        yield f"recsys_request_seconds_count{_labels(endpoint=endpoint, pid=pid)} {_number(values[-1])}"
