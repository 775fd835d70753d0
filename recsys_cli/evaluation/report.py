"""Evaluation results as rich tables for the terminal and as one self-contained HTML page.

Both take the `results` dict that `recsys evaluate` builds and `--json FILE` writes:

    {
      "dataset": {"events": int, "customers": int, "products": int, "pairs": int,
                  "sparsity": float, "time_range": [iso_start, iso_end], ...other summary keys},
      "split": {"kind": "temporal" | "last", "cutoff": iso | None,
                "train": {"events": int, "customers": int, "products": int},
                "test": {"events": int, "customers": int, "products": int},
                "truth_users": int, "skipped_empty_truth": int},
      "ks": [10, 20],
      "seed": 42,
      "models": {
        "<model name>": {
          "seconds": float,
          "overall": {"users": int, "precision@10": float, ..., "auc": float | None},
          "segments": {"cold": {"users": int, "ndcg@10": float, ...}, "few": {...}, "warm": {...}}
        }
      }
    }

Metric keys are `"<metric>@<k>"` as produced by metrics.evaluate_ranking. A metric that could
not be computed is None (or nan) and is shown as a dash. Higher is better for every metric
(novelty included); for "seconds" lower is better.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from .metrics import CATALOG_METRICS, RANKING_METRICS
from .split import SEGMENTS

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from rich.console import Console

OVERALL_METRICS: tuple[str, ...] = RANKING_METRICS + CATALOG_METRICS
SEGMENT_METRICS: tuple[str, ...] = ("ndcg", "recall", "hit_rate")
CURVE_METRICS: tuple[str, ...] = ("precision", "recall", "ndcg", "hit_rate")
LOWER_IS_BETTER: frozenset[str] = frozenset({"seconds"})
SEGMENT_MEANING: dict[str, str] = {
    "cold": "no train history",
    "few": "1-4 train products",
    "warm": "5 or more train products",
}
MISSING = "–"


# ---- shared helpers -------------------------------------------------------------------


def overall_columns(ks: Sequence[int]) -> list[str]:
    """Overall table columns: every metric at every k, then auc and seconds."""
    return [f"{metric}@{k}" for k in ks for metric in OVERALL_METRICS] + ["auc", "seconds"]


def segment_columns(ks: Sequence[int]) -> list[str]:
    """Segment table columns after "users": ndcg, recall and hit rate at every k."""
    return [f"{metric}@{k}" for k in ks for metric in SEGMENT_METRICS]


def _number(value: Any) -> float | None:
    """A finite float, or None for missing / None / nan values."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _format_metric(column: str, value: Any) -> str:
    number = _number(value)
    if number is None:
        return MISSING
    if column == "seconds":
        return f"{number:.2f}"
    if column == "users":
        return f"{int(number):,}"
    return f"{number:.4f}"


def _best(rows: Mapping[str, Mapping[str, Any]], column: str) -> float | None:
    """The best value of one column over models (ties all count as best)."""
    values = [n for n in (_number(row.get(column)) for row in rows.values()) if n is not None]
    if not values:
        return None
    return min(values) if column in LOWER_IS_BETTER else max(values)


def _is_best(value: Any, best: float | None, column: str) -> bool:
    number = _number(value)
    # Compare what is displayed, so two values that print the same are both marked.
    return best is not None and number is not None and _format_metric(column, number) == _format_metric(column, best)


def _overall_rows(results: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    rows = {}
    for name, model in results.get("models", {}).items():
        rows[str(name)] = {**model.get("overall", {}), "seconds": model.get("seconds")}
    return rows


def _segment_names(results: Mapping[str, Any]) -> list[str]:
    present = {segment for model in results.get("models", {}).values() for segment in model.get("segments", {})}
    return [s for s in SEGMENTS if s in present] + sorted(present - set(SEGMENTS))


def _segment_rows(results: Mapping[str, Any], segment: str) -> dict[str, dict[str, Any]]:
    return {
        str(name): model["segments"][segment] for name, model in results.get("models", {}).items() if segment in model.get("segments", {})
    }


def _user_count(rows: Mapping[str, Mapping[str, Any]]) -> str:
    counts = sorted({int(n) for n in (_number(row.get("users")) for row in rows.values()) if n is not None})
    if not counts:
        return "0 users"
    if len(counts) == 1:
        return f"{counts[0]:,} users"
    return f"{counts[0]:,}–{counts[-1]:,} users"


def _format_value(value: Any) -> str:
    """A dataset/split summary value as text."""
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else MISSING
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if value is None:
        return MISSING
    if isinstance(value, (list, tuple)):
        return " – ".join(_format_value(v) for v in value)
    if isinstance(value, Mapping):
        return ", ".join(f"{k}: {_format_value(v)}" for k, v in value.items())
    return str(value)


# ---- terminal ---------------------------------------------------------------------------


def render_tables(results: Mapping[str, Any], console: Console) -> None:
    """Print the overall metrics table, then one table per customer segment (user counts in
    the titles). The best value of each metric across models is bold green.

    The overall table has one column per model and one row per metric: with every metric at
    every k it would otherwise be far wider than a terminal. Segment tables have a row per model.
    """
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    ks = list(results.get("ks", []))

    def cell(column: str, value: Any, best: float | None) -> Text:
        style = "bold green" if column != "users" and _is_best(value, best, column) else ""
        return Text(_format_metric(column, value), style=style)

    overall = _overall_rows(results)
    table = Table(title=escape(f"Overall ({_user_count(overall)})"), title_justify="left", header_style="bold")
    table.add_column("metric", no_wrap=True)
    for name in overall:
        table.add_column(Text(name), justify="right")  # Text, not markup: names are shown verbatim
    for column in overall_columns(ks):
        best = _best(overall, column)
        table.add_row(column, *(cell(column, row.get(column), best) for row in overall.values()))
    console.print(table)

    for segment in _segment_names(results):
        rows = _segment_rows(results, segment)
        meaning = SEGMENT_MEANING.get(segment, "")
        title = f"Segment {segment}{f': {meaning}' if meaning else ''} ({_user_count(rows)})"
        table = Table(title=escape(title), title_justify="left", header_style="bold")
        table.add_column("model")
        columns = ["users", *segment_columns(ks)]
        for column in columns:
            table.add_column(column, justify="right", no_wrap=True)
        best = {column: _best(rows, column) for column in columns}
        for name, row in rows.items():
            table.add_row(Text(name), *(cell(column, row.get(column), best[column]) for column in columns))
        console.print(table)


# ---- HTML -------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 80em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.best { background: #e6f4ea; }
th { background: #f3f3f3; }
img { max-width: 100%; }
div.scroll { overflow-x: auto; }
""".strip()


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _key_value_table(items: Iterable[tuple[str, Any]]) -> str:
    rows = "".join(f"<tr><th>{_esc(key)}</th><td>{_esc(_format_value(value))}</td></tr>" for key, value in items)
    return f"<table>{rows}</table>"


def _metric_table(rows: Mapping[str, Mapping[str, Any]], columns: list[str]) -> str:
    best = {column: _best(rows, column) for column in columns}
    head = "".join(f"<th>{_esc(column)}</th>" for column in ["model", *columns])
    body = []
    for name, row in rows.items():
        cells = [f"<th>{_esc(name)}</th>"]
        for column in columns:
            text = _esc(_format_metric(column, row.get(column)))
            if column != "users" and _is_best(row.get(column), best[column], column):
                cells.append(f'<td class="num best"><strong>{text}</strong></td>')
            else:
                cells.append(f'<td class="num">{text}</td>')
        body.append(f"<tr>{''.join(cells)}</tr>")
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f'<div class="scroll">{table}</div>'


def _split_tables(split: Mapping[str, Any]) -> str:
    scalars = [(key, value) for key, value in split.items() if key not in ("train", "test")]
    parts = [_key_value_table(scalars)]
    if "train" in split or "test" in split:
        measures = ("events", "customers", "products")
        head = "<tr><th></th>" + "".join(f"<th>{_esc(m)}</th>" for m in measures) + "</tr>"
        body = "".join(
            f"<tr><th>{_esc(part)}</th>"
            + "".join(f'<td class="num">{_esc(_format_value(split[part].get(m)))}</td>' for m in measures)
            + "</tr>"
            for part in ("train", "test")
            if isinstance(split.get(part), Mapping)
        )
        parts.append(f"<table><thead>{head}</thead><tbody>{body}</tbody></table>")
    return "".join(parts)


def _plot_label(name: str) -> str:
    """A legend label matplotlib shows verbatim: no mathtext, no leading underscore."""
    label = name.replace("$", r"\$")
    return f" {label}" if label.startswith("_") else label


def _png_data_uri(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _new_figure(width: float, height: float) -> Figure:
    # Figure + the Agg canvas directly: no pyplot, so no global backend switch or figure registry.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _curves_figure(results: Mapping[str, Any]) -> Figure:
    ks = sorted(results.get("ks", []))
    rows = _overall_rows(results)
    figure = _new_figure(4 * len(CURVE_METRICS), 3.4)
    axes = figure.subplots(1, len(CURVE_METRICS), squeeze=False)[0]
    for ax, metric in zip(axes, CURVE_METRICS, strict=True):
        for name, row in rows.items():
            values = [_number(row.get(f"{metric}@{k}")) for k in ks]
            ax.plot(ks, [math.nan if v is None else v for v in values], marker="o", label=_plot_label(name))
        ax.set_title(f"{metric}@k")
        ax.set_xlabel("k")
        ax.set_xticks(ks)
        ax.grid(alpha=0.3)
    if rows:
        figure.legend(*axes[0].get_legend_handles_labels(), loc="outside right upper", fontsize="small")
    return figure


def _segments_figure(results: Mapping[str, Any], k: int) -> Figure:
    segments = _segment_names(results)
    models = results.get("models", {})
    figure = _new_figure(max(5.0, 1.6 * len(segments) * max(1, len(models)) ** 0.5 + 2), 3.6)
    ax = figure.subplots()
    width = 0.8 / max(1, len(models))
    labels = [f"{s}\n({_user_count(_segment_rows(results, s))})" for s in segments]
    for i, (name, model) in enumerate(models.items()):
        segment_data = model.get("segments", {})
        heights = [_number(segment_data.get(s, {}).get(f"ndcg@{k}")) for s in segments]
        positions = [j + (i - (len(models) - 1) / 2) * width for j in range(len(segments))]
        ax.bar(positions, [math.nan if h is None else h for h in heights], width, label=_plot_label(str(name)))
    ax.set_xticks(range(len(segments)), labels)
    ax.set_ylabel(f"ndcg@{k}")
    ax.set_title(f"ndcg@{k} by customer segment")
    ax.grid(axis="y", alpha=0.3)
    if models:
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    return figure


def render_html(results: Mapping[str, Any]) -> str:
    """The report page as a string (see write_html_report)."""
    ks = list(results.get("ks", []))
    dataset = results.get("dataset", {})
    split = results.get("split", {})
    overall = _overall_rows(results)
    settings = [("ks", ks), ("seed", results.get("seed"))]

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>recsys evaluation report</title>",
        f"<style>{_CSS}</style></head><body>",
        "<h1>recsys evaluation report</h1>",
        "<h2>Dataset</h2>",
        _key_value_table(dataset.items()),
        f"<h2>Split: {_esc(split.get('kind', MISSING))}</h2>",
        _split_tables(split),
        _key_value_table(settings),
        f"<h2>Overall ({_esc(_user_count(overall))})</h2>",
        "<p>Best value per column in bold (lowest for seconds, highest otherwise).</p>",
        _metric_table(overall, overall_columns(ks)),
    ]
    if overall and ks:
        parts += [
            "<h2>Metrics at k</h2>",
            f'<img alt="precision, recall, ndcg and hit rate at each k per model" src="{_png_data_uri(_curves_figure(results))}">',
        ]
    segments = _segment_names(results)
    if segments:
        parts.append("<h2>Customer segments</h2>")
        for segment in segments:
            rows = _segment_rows(results, segment)
            meaning = SEGMENT_MEANING.get(segment, "")
            parts += [
                f"<h3>{_esc(segment)}{_esc(f': {meaning}' if meaning else '')} ({_esc(_user_count(rows))})</h3>",
                _metric_table(rows, ["users", *segment_columns(ks)]),
            ]
        if ks:
            first_k = ks[0]
            parts.append(
                f'<img alt="ndcg@{first_k} per customer segment and model" src="{_png_data_uri(_segments_figure(results, first_k))}">'
            )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_html_report(results: Mapping[str, Any], path: Path) -> None:
    """Write one self-contained HTML page (inline CSS, PNG figures as data URIs, no scripts)."""
    path = Path(path)
    if not path.parent.is_dir():  # fail before the (slow) plotting
        raise InputError(f"cannot write the HTML report to {path}: folder {path.parent} does not exist")
    page = render_html(results)
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write the HTML report to {path}: {exc.strerror or exc}") from exc
