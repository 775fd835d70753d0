"""The terminal tables and the HTML page, from a hand-made results dict."""

from __future__ import annotations

import base64
import io
import re
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image
import pytest
from rich.console import Console

from recsys_cli.errors import InputError
from recsys_cli.evaluation.report import render_tables, write_html_report

EVIL = "<script>alert(1)</script>"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
VOID_TAGS = {"meta", "img", "br", "hr", "link", "input"}


def _model(scale: float, seconds: float, auc: float | None) -> dict:
    overall: dict = {"users": 120, "auc": auc}
    for k in (10, 20):
        for metric in ("precision", "recall", "ndcg", "map", "hit_rate", "mrr", "coverage", "novelty"):
            overall[f"{metric}@{k}"] = scale * (0.1 if k == 10 else 0.15)
    segments = {
        name: {"users": users, **{f"{m}@{k}": scale * 0.05 for m in ("ndcg", "recall", "hit_rate") for k in (10, 20)}}
        for name, users in (("cold", 17), ("few", 31), ("warm", 72))
    }
    return {"seconds": seconds, "overall": overall, "segments": segments}


def _results() -> dict:
    return {
        "dataset": {
            "events": 5000,
            "customers": 300,
            "products": 80,
            "pairs": 2100,
            "sparsity": 0.9125,
            "time_range": ["2024-01-01T00:00:00+00:00", "2024-03-01T00:00:00+00:00"],
            "source": f"shop {EVIL}",
        },
        "split": {
            "kind": "temporal",
            "cutoff": "2024-02-18T00:00:00+00:00",
            "train": {"events": 4000, "customers": 280, "products": 78},
            "test": {"events": 1000, "customers": 150, "products": 70},
            "truth_users": 120,
            "skipped_empty_truth": 30,
        },
        "ks": [10, 20],
        "seed": 42,
        "models": {
            "popularity": _model(1.0, 0.5, 0.7),
            "hybrid": _model(2.0, 12.25, 0.8123),  # best everywhere except seconds
            EVIL: _model(0.5, 3.0, None),
        },
    }


@pytest.fixture
def results() -> dict:
    return _results()


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The report for `_results()`, rendered once: plotting is the slow part."""
    path = tmp_path_factory.mktemp("report") / "report.html"
    write_html_report(_results(), path)
    return path.read_text(encoding="utf-8")


class _Structure(HTMLParser):
    """Records tag balance, <img> sources and the text inside <strong>."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.images: list[str] = []
        self.strong: list[str] = []
        self.scripts = 0
        self._in_strong = False
        self.seen: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.seen.add(tag)
        if tag == "img":
            self.images.append(dict(attrs)["src"] or "")
        if tag == "script":
            self.scripts += 1
        if tag not in VOID_TAGS:
            self.stack.append(tag)
        self._in_strong = self._in_strong or tag == "strong"

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()
        if tag == "strong":
            self._in_strong = False

    def handle_data(self, data: str) -> None:
        if self._in_strong:
            self.strong.append(data)


def _parse(page: str) -> _Structure:
    parser = _Structure()
    parser.feed(page)
    parser.close()
    return parser


def test_html_report_is_balanced_and_self_contained(page: str) -> None:
    structure = _parse(page)
    assert structure.errors == []
    assert structure.stack == []
    assert {"html", "head", "body", "title", "h1", "table", "img"} <= structure.seen
    assert structure.scripts == 0
    assert "http://" not in page and "https://" not in page  # no CDN or other external resource


def test_html_images_are_png_data_uris_that_decode(page: str) -> None:
    images = _parse(page).images
    assert len(images) == 2  # metric@k curves, and per-segment bars
    for src in images:
        assert src.startswith("data:image/png;base64,")
        data = base64.b64decode(src.removeprefix("data:image/png;base64,"), validate=True)
        assert data.startswith(PNG_SIGNATURE)
        pixels = matplotlib.image.imread(io.BytesIO(data), format="png")
        assert pixels.ndim == 3 and pixels.shape[0] > 50 and pixels.shape[1] > 50


def test_html_marks_the_best_value_per_column(page: str) -> None:
    overall_table = page[page.index("<h2>Overall") :].split("</table>")[0]
    strong = _parse(overall_table + "</table>").strong
    # hybrid (scale 2) is best on all 16 metric@k columns and auc; popularity has the fewest seconds
    assert sorted(strong) == sorted(["0.2000"] * 8 + ["0.3000"] * 8 + ["0.8123", "0.50"])
    hybrid_row = re.search(r"<tr><th>hybrid</th>.*?</tr>", overall_table).group(0)
    assert '<td class="num best"><strong>0.8123</strong></td>' in hybrid_row
    assert '<td class="num">12.25</td>' in hybrid_row  # slowest: not marked
    popularity_row = re.search(r"<tr><th>popularity</th>.*?</tr>", overall_table).group(0)
    assert popularity_row.count("<strong>") == 1  # only its seconds


def test_html_escapes_names_and_summary_text(page: str) -> None:
    assert EVIL not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert _parse(page).scripts == 0


def test_html_report_reports_unwritable_path_as_input_error(tmp_path: Path, results: dict) -> None:
    with pytest.raises(InputError, match="cannot write"):
        write_html_report(results, tmp_path / "missing-dir" / "report.html")


def test_html_report_without_segments_or_auc(tmp_path: Path, results: dict) -> None:
    for model in results["models"].values():
        model.pop("segments")
        model["overall"]["auc"] = None
    results["models"]["price $x$ _model"] = results["models"].pop("hybrid")  # no mathtext in legends
    path = tmp_path / "report.html"
    write_html_report(results, path)
    structure = _parse(path.read_text(encoding="utf-8"))
    assert structure.errors == [] and len(structure.images) == 1


def test_render_tables_shows_models_and_segment_user_counts(results: dict) -> None:
    console = Console(record=True, width=200)
    render_tables(results, console)
    text = console.export_text()
    for name in ("popularity", "hybrid", EVIL):
        assert name in text  # shown verbatim, not swallowed as rich markup
    assert "Overall (120 users)" in text
    for segment, users in (("cold", 17), ("few", 31), ("warm", 72)):
        assert re.search(rf"Segment {segment}\b.*\({users} users\)", text)
    for column in ("precision@10", "novelty@20", "auc", "seconds", "hit_rate@20"):
        assert column in text


def test_render_tables_highlights_best_in_bold_green(results: dict) -> None:
    console = Console(record=True, width=200, color_system="truecolor", force_terminal=True)
    render_tables(results, console)
    styled = console.export_text(styles=True)
    bold_green = r"\x1b\[1;32m *"  # right-justified cells carry their padding inside the style

    def marked(value: str, line: str) -> bool:
        return re.search(bold_green + re.escape(value), line) is not None

    auc_line = next(line for line in styled.splitlines() if "auc" in line)
    # models are columns popularity, hybrid, EVIL: only hybrid's 0.8123 is bold green
    assert marked("0.8123", auc_line)
    assert not marked("0.7000", auc_line) and "0.7000" in auc_line
    seconds_line = next(line for line in styled.splitlines() if "seconds" in line)
    assert marked("0.50", seconds_line)  # fewest seconds wins
    assert not marked("12.25", seconds_line)
