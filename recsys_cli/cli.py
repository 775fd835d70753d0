"""The `recsys` command line: one thin function per subcommand (parse, one call, format).

Library errors (RecsysError) become a one-line message on stderr and the error's exit code;
nothing else is caught here, so a real bug still shows its traceback.
"""

from __future__ import annotations

import codecs
import dataclasses
import functools
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from .errors import InputError, RecsysError

app = typer.Typer(
    name="recsys",
    help="Personalized product recommendations for an online store: ingest CSVs, train, evaluate, recommend, serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False)


def _print_version(value: bool) -> None:
    if value:
        from . import __version__

        out.print(f"recsys {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """Personalized product recommendations for an online store: ingest CSVs, train, evaluate, recommend, serve."""


DataOpt = Annotated[Path, typer.Option("--data", "-d", help="Folder with events*.csv and catalog.csv.", envvar="RECSYS_DATA")]
ArtifactsOpt = Annotated[
    Path, typer.Option("--artifacts", "-a", help="Artifacts folder (versions, current, snapshots).", envvar="RECSYS_ARTIFACTS")
]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="Settings file (TOML); default ./recsys.toml if present.")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="SECTION.KEY=VALUE",
        help="Change one setting (repeatable), e.g. --set router.precomputed=50; beats the settings file and RECSYS_SECTION__KEY.",
    ),
]
ServedSetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="SECTION.KEY=VALUE",
        help="Change a setting read while serving (repeatable): router.exclude, router.session_items, router.session_weight "
        "or router.warm_min_products, e.g. --set router.session_weight=0.5; the others are fixed when training.",
    ),
]
LiveStoreOpt = Annotated[
    str | None,
    typer.Option(
        "--live-store",
        help="Live events in PostgreSQL (postgresql://user@host/db), shared by server replicas; default: SQLite in --data.",
        envvar="RECSYS_LIVE_STORE",
    ),
]


class InputFormat(str, Enum):
    canonical = "canonical"
    retailrocket = "retailrocket"
    movielens = "movielens"
    online_retail = "online-retail"
    beauty = "beauty"


class TrainEngine(str, Enum):
    local = "local"
    spark = "spark"


class OutputFormat(str, Enum):
    """What a command prints: a table for people, json/jsonl/csv for programs."""

    table = "table"
    json = "json"
    jsonl = "jsonl"
    csv = "csv"


InputFormatOpt = Annotated[InputFormat, typer.Option("--input-format", "-f", help="Input format: canonical CSVs or a public-data preset.")]
OutputOpt = Annotated[
    str | None,
    typer.Option("--format", metavar="[table|json|jsonl|csv]", help="Output format (the ones this command accepts are in its help)."),
]


def _output_format(value: str | None, accepted: tuple[OutputFormat, ...], *, default: OutputFormat, what: str) -> OutputFormat:
    """The chosen output format, or InputError (exit 2) when `what` does not produce it: a flag
    that does not apply is refused rather than ignored."""
    if value is None:
        return default
    names = ", ".join(f.value for f in accepted)
    if value in {f.value for f in InputFormat}:
        raise InputError(f"--format is the output format ({names}); to read {value} data use --input-format {value}")
    try:
        chosen = OutputFormat(value)
    except ValueError:
        raise InputError(f"unknown --format '{value}' (choose {names})") from None
    if chosen not in accepted:
        raise InputError(f"--format {chosen.value} does not apply to {what} (choose {names})")
    return chosen


TABLE_OR_JSON = (OutputFormat.table, OutputFormat.json)
EVERY_FORMAT = tuple(OutputFormat)


def _print_json(payload: Any) -> None:
    """One JSON document on stdout, plain (no colour, no wrapping), so that programs can read it."""
    typer.echo(json.dumps(_finite(payload), indent=2))


def handles_errors(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turn RecsysError into a clean message and exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except RecsysError as error:
            err.print(f"[bold red]Error:[/] {error}", markup=True, highlight=False, soft_wrap=True)
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper


def _log(message: str) -> None:
    err.print(f"[dim]{message}[/]" if err.is_terminal else message, markup=err.is_terminal, highlight=False)


@app.command()
@handles_errors
def generate(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder to write events.csv and catalog.csv into.")] = Path("data"),
    preset: Annotated[str | None, typer.Option(help="Named size: 'seed' (the original assignment's scale) or 'sample'.")] = None,
    customers: Annotated[int | None, typer.Option(help="Number of customers (overrides the preset).")] = None,
    products: Annotated[int | None, typer.Option(help="Number of products (overrides the preset).")] = None,
    events: Annotated[int | None, typer.Option(help="Number of events (overrides the preset).")] = None,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives byte-identical files.")] = 42,
    force: Annotated[bool, typer.Option("--force", help="Overwrite events.csv and catalog.csv if the folder has them.")] = False,
    output_format: OutputOpt = None,
) -> None:
    """Write a realistic synthetic dataset (events.csv, catalog.csv) in the canonical format.

    An existing events.csv or catalog.csv in the folder is never overwritten without --force.
    --format: table (default) or json (the counts).

    Example: recsys generate --preset seed --out /tmp/shop
    """
    from .data.synthetic import PRESETS
    from .data.synthetic import generate as run

    fmt = _output_format(output_format, TABLE_OR_JSON, default=OutputFormat.table, what="generate")
    if preset is not None and preset not in PRESETS:
        raise InputError(f"unknown preset '{preset}' (choose {', '.join(PRESETS)})")
    existing = [name for name in ("events.csv", "catalog.csv") if (out_dir / name).exists()]
    if existing and not force:
        raise InputError(f"{out_dir} already has {' and '.join(existing)}; choose another --out, or add --force to overwrite")
    sizes = dict(PRESETS[preset or "sample"])
    for name, value in (("customers", customers), ("products", products), ("events", events)):
        if value is not None:
            sizes[name] = value
    with _status("generating") as progress:
        summary = run(out_dir, **sizes, seed=seed, progress=progress)
    if fmt is OutputFormat.json:
        _print_json({"out": str(out_dir), **dataclasses.asdict(summary)})
        return
    table = Table(title=f"Generated {out_dir}", show_header=False)
    for label, value in (
        ("events", summary.events),
        *summary.by_type.items(),
        ("customers", summary.customers),
        ("products", summary.products),
        ("distinct pairs", summary.pairs),
    ):
        table.add_row(label, f"{value:,}")
    table.add_row("seconds", f"{summary.seconds:.1f}")
    out.print(table)


@contextmanager
def _status(first: str) -> Iterator[Callable[[str], None]]:
    """A progress callback: a spinner with the current stage on a terminal, one log line per stage otherwise."""
    if not err.is_terminal:
        yield _log
        return
    from rich.status import Status

    with Status(first, console=err) as status:
        yield lambda stage: status.update(stage)


@app.command()
@handles_errors
def ingest(
    data: DataOpt = Path("data"),
    artifacts: ArtifactsOpt = Path("artifacts"),
    fmt: InputFormatOpt = InputFormat.canonical,
    strict: Annotated[bool, typer.Option("--strict", help="Fail (exit 1) on the first bad row instead of skipping it.")] = False,
    encoding: Annotated[str, typer.Option(help="Text encoding of the CSV files.")] = "utf8",
    force: Annotated[bool, typer.Option("--force", help="Rebuild the snapshot even if the inputs are unchanged.")] = False,
    output_format: OutputOpt = None,
    live_store: LiveStoreOpt = None,
) -> None:
    """Validate the CSVs and write a fingerprinted snapshot that train and evaluate reuse.

    Bad rows are skipped and reported (file, line, reason); the full list goes to rejects.csv
    next to the snapshot. Exit code 2: unusable input; 1: bad rows under --strict or a mostly-bad file.
    --format: table (default) or json (the summary and the first 20 rejected rows).

    Example: recsys ingest --data data/ --artifacts artifacts/
    """
    from .data.ingest import ingest as run

    output = _output_format(output_format, TABLE_OR_JSON, default=OutputFormat.table, what="ingest")
    forgotten = _forgotten(data, live_store)
    snapshot = run(data, artifacts, fmt=fmt.value, strict=strict, encoding=encoding, force=force, log=_log, forgotten=forgotten)
    if output is OutputFormat.json:
        _print_json(
            {
                "fingerprint": snapshot.fingerprint,
                "reused": bool(snapshot.reused),
                "summary": snapshot.summary,
                "rejected": int(len(snapshot.rejects)),
                "rejects_file": str(snapshot.path / "rejects.csv") if len(snapshot.rejects) else None,
                "rejects": snapshot.rejects.head(20)[["file", "line", "reason"]].to_dict(orient="records"),
            }
        )
        return
    if snapshot.reused:
        out.print(f"Inputs unchanged: snapshot {snapshot.fingerprint[:16]} reused (nothing to do). Use --force to rebuild.")
    _print_summary(snapshot.summary, title=f"Snapshot {snapshot.fingerprint[:16]}")
    if len(snapshot.rejects):
        shown = snapshot.rejects.head(20)
        err.print(f"{len(snapshot.rejects):,} rows rejected (first {len(shown)} below; all in {snapshot.path / 'rejects.csv'}):")
        for row in shown.itertuples():
            err.print(f"  {row.file}:{row.line}: {row.reason}", markup=False, highlight=False)


def _forgotten(data: Path, live_store: str | None) -> dict[str, int]:
    """The live store's deletion list (forgotten customers' hashes), which every snapshot honours."""
    from .live import open_live_store

    return open_live_store(data, live_store).forgotten()


def _print_summary(summary: dict, *, title: str) -> None:
    table = Table(title=title, show_header=False)
    table.add_row("events", f"{summary['events']:,}")
    for name, count in summary["events_by_type"].items():
        table.add_row(f"  {name}", f"{count:,}")
    table.add_row("customers", f"{summary['customers']:,}")
    table.add_row("products (in events / catalog)", f"{summary['products_in_events']:,} / {summary['catalog_products']:,}")
    table.add_row("distinct customer-product pairs", f"{summary['pairs']:,}")
    table.add_row("sparsity", f"{summary['sparsity']:.4%}")
    start, end = summary["time_range"]
    table.add_row("time range", f"{start} .. {end}")
    table.add_row("rejected rows", f"{summary['rejected']:,}")
    for reason, count in summary.get("rejected_by_reason", {}).items():
        table.add_row(f"  {reason}", f"{count:,}")
    table.add_row("duplicates collapsed", f"{summary['duplicates_collapsed']:,}")
    table.add_row("events for products not in catalog", f"{summary['events_unknown_product']:,}")
    out.print(table)
    for note in summary.get("notes", []):
        out.print(f"note: {note}", markup=False, highlight=False)


def _settings(config: Path | None, assignments: list[str] | None, overrides: dict[str, dict[str, Any]] | None = None) -> Any:
    from .config import load_settings

    overrides = {s: {k: v for k, v in e.items() if v is not None} for s, e in (overrides or {}).items()}
    return load_settings(config, assignments=assignments or (), overrides=overrides)


@app.command()
@handles_errors
def train(
    data: DataOpt = Path("data"),
    artifacts: ArtifactsOpt = Path("artifacts"),
    config: ConfigOpt = None,
    assignments: SetOpt = None,
    fmt: InputFormatOpt = InputFormat.canonical,
    collaborative: Annotated[
        str | None,
        typer.Option(
            help="Model for warm customers: auto (chosen on a validation split), itemknn, rp3beta, ease, als, lightfm, item or popularity."
        ),
    ] = None,
    few: Annotated[
        str | None,
        typer.Option(help="Model for customers with a short history: auto, same (as warm), a model name, content or popularity."),
    ] = None,
    warm_min_products: Annotated[
        int | None, typer.Option(help="Distinct products from which a customer counts as warm (fewer: the few-products model).")
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="LightFM epochs.")] = None,
    components: Annotated[int | None, typer.Option(help="LightFM latent dimensions.")] = None,
    half_life_days: Annotated[float | None, typer.Option(help="Recency half-life of interaction weights in days (0 = off).")] = None,
    if_changed: Annotated[
        bool, typer.Option("--if-changed", help="Exit 0 without work when inputs and settings equal the current version's (for cron).")
    ] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Wait for another running train instead of exiting with code 3.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Fail on the first bad input row.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Publish even if the publish guard refuses the new version.")] = False,
    live_store: LiveStoreOpt = None,
    engine: Annotated[
        TrainEngine | None,
        typer.Option(
            help="local (default): one machine, models chosen on a validation split. spark: weighting, item kNN and ALS "
            "as Spark jobs (needs the spark extra); models fixed by --collaborative/--few (auto = itemknn), no selection."
        ),
    ] = None,
    spark_master: Annotated[
        str | None, typer.Option(help="Spark master URL for --engine spark: local[*] (default), spark://host:7077, yarn, k8s://...")
    ] = None,
    max_shrink: Annotated[
        float, typer.Option(help="Publish guard: refuse if events, customers or products shrank by more than this fraction.")
    ] = 0.5,
    max_reject_rate: Annotated[
        float, typer.Option(help="Publish guard: refuse if more than this fraction of event lines was rejected.")
    ] = 0.1,
    output_format: OutputOpt = None,
) -> None:
    """Ingest (reusing an unchanged snapshot), fit the models and publish a new artifacts version.

    Prints which model serves each customer segment (chosen on a validation split). The new
    version becomes `current` atomically; a running server picks it up. The publish guard
    keeps `current` (exit 4, one line naming the check) if the new data lost too much against the
    published version or too many lines were rejected; --force publishes anyway. With --engine spark
    the weighting, item kNN and ALS run as Spark jobs and write the same artifacts (README: Beyond one machine).
    --format: table (default) or json (version, stage seconds, the model chosen per segment).

    Example: recsys train --data data/ --artifacts artifacts/
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from .publish_guard import GuardConfig
    from .training import STAGES
    from .training import train as run

    output = _output_format(output_format, TABLE_OR_JSON, default=OutputFormat.table, what="train")
    guard = GuardConfig(max_shrink=max_shrink, max_reject_rate=max_reject_rate, force=force)

    settings = _settings(
        config,
        assignments,
        {
            "router": {"collaborative": collaborative, "few": few, "warm_min_products": warm_min_products},
            "lightfm": {"epochs": epochs, "no_components": components},
            "weighting": {"half_life_days": half_life_days},
            "training": {"engine": engine.value if engine else None},
            "spark": {"master": spark_master},
        },
    )
    if err.is_terminal:
        with Progress(TextColumn("{task.description:<14}"), BarColumn(), TimeElapsedColumn(), console=err, transient=True) as bar:
            task = bar.add_task("starting", total=len(STAGES))
            seen: list[str] = []

            def progress(stage: str) -> None:
                seen.append(stage)
                done = STAGES.index(stage.split(":")[0]) if stage.split(":")[0] in STAGES else len(seen)
                bar.update(task, description=stage[:60], completed=done)

            outcome = run(
                data,
                artifacts,
                settings,
                fmt=fmt.value,
                strict=strict,
                if_changed=if_changed,
                wait=wait,
                progress=progress,
                log=_train_log,
                guard=guard,
                live_store=live_store,
            )
    else:
        outcome = run(
            data,
            artifacts,
            settings,
            fmt=fmt.value,
            strict=strict,
            if_changed=if_changed,
            wait=wait,
            progress=lambda stage: _log(f"stage: {stage}"),
            log=_train_log,
            guard=guard,
            live_store=live_store,
        )
    if output is OutputFormat.json:
        from .selection import winners

        _print_json(
            {
                "version": outcome.version,
                "skipped": bool(outcome.skipped),
                "seconds": outcome.seconds,
                "segments": winners(outcome.selection) if outcome.selection else [],
            }
        )
        return
    if outcome.skipped:
        out.print(f"Nothing to do: version {outcome.version} was trained on the same inputs and settings.")
        return
    table = Table(title=f"Trained version {outcome.version}", show_header=True)
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    for stage, seconds in outcome.seconds.items():
        table.add_row(stage, f"{seconds:.2f}")
    out.print(table)
    _print_selection(outcome.selection)


def _train_log(message: str) -> None:
    """train's log lines, less its own "nothing to do" for --if-changed: the command says that once, on stdout."""
    if not message.startswith(SKIP_LOG_PREFIX):
        _log(message)


SKIP_LOG_PREFIX = "inputs and settings unchanged since version"


def _print_selection(selection: dict) -> None:
    """Which model serves each segment, and its validation NDCG@10 against popularity and the runner-up."""
    from .selection import LEAD_SE, NO_SPLIT, winners

    rows = winners(selection)
    if not rows:
        split = str(selection.get("split", ""))
        if split.startswith(NO_SPLIT + ":"):
            out.print(f"No model search ({split[len(NO_SPLIT) + 1 :].strip()}): every segment the settings do not fix gets popularity.")
        return
    table = Table(title=f"Chosen on a validation split ({selection.get('split', '')})", show_header=True)
    for column in ("segment", "model", "NDCG@10", "popularity", "runner-up"):
        table.add_column(column, justify="right" if column in ("NDCG@10", "popularity") else "left")
    for row in rows:
        runner = f"{row['runner_up']} ({row['runner_up_ndcg']:.4f})" if row["runner_up"] else "-"
        table.add_row(row["segment"], row["chosen"], f"{row['ndcg']:.4f}", f"{row['best_popularity']:.4f}", runner)
    out.print(table)
    if any(row["chosen"].startswith("popularity") and row["ndcg"] < row["best_popularity"] for row in rows):
        out.print("A popularity ranking that leads the simplest one by no more than two standard errors does not replace it.")
    if any(row.get("within_noise_for") for row in selection.get("table", [])):
        out.print(
            f"A blend that leads the best single model by no more than {LEAD_SE:g} standard errors does not replace it"
            " (it scores and merges two lists at every request)."
        )
    out.print(
        f"{len(selection.get('table', []))} candidates scored in {selection.get('seconds', 0):.1f} s; all of them are in the version's manifest.json."
    )


class SplitKind(str, Enum):
    temporal = "temporal"
    last = "last"


@app.command()
@handles_errors
def evaluate(
    data: DataOpt = Path("data"),
    artifacts: ArtifactsOpt = Path("artifacts"),
    config: ConfigOpt = None,
    assignments: SetOpt = None,
    fmt: InputFormatOpt = InputFormat.canonical,
    split: Annotated[
        SplitKind,
        typer.Option(
            help="temporal: the newest events are test (as the shared harness); last: each customer's last event, customers with 3+ products (as the harness)."
        ),
    ] = SplitKind.temporal,
    test_fraction: Annotated[float, typer.Option(help="Share of the events held out, newest first (temporal split).")] = 0.2,
    test_days: Annotated[float | None, typer.Option(help="Hold out the last N days instead of a fraction.")] = None,
    relevant: Annotated[
        str | None, typer.Option(help="Event types that count as relevant, e.g. purchase_item,add_to_cart (default: all).")
    ] = None,
    k: Annotated[list[int] | None, typer.Option("--k", help="Cut-offs (repeatable); default 10 and 20.")] = None,
    with_peers: Annotated[
        bool, typer.Option("--with-peers", help="Also train implicit ALS, plain LightFM, EASE and ItemKNN as users would.")
    ] = False,
    seed: Annotated[int, typer.Option(help="Random seed (random baseline, AUC sample).")] = 42,
    output_format: OutputOpt = None,
    json_file: Annotated[Path | None, typer.Option("--json", hidden=True, help="Also write the JSON results to this file.")] = None,
    report: Annotated[Path | None, typer.Option("--report", help="Write a self-contained HTML report with plots.")] = None,
    do_tune: Annotated[
        bool,
        typer.Option("--tune", help="Also search settings on a validation split of the train part and print the best ones."),
    ] = False,
    write_config: Annotated[
        Path | None, typer.Option("--write-config", help="With --tune: merge the winning settings into this TOML file (train reads it).")
    ] = None,
) -> None:
    """Offline evaluation: one split, every model ranked over the full catalog against the same truth.

    Compares random, popularity, content, collaborative and the routed hybrid (what `recommend`
    returns), overall and per segment (cold / few / warm customers), and says which split it used.
    --format: table (default) or json (every number). --tune writes nothing unless --write-config FILE.

    Example: recsys evaluate --data data/ --with-peers --report eval.html ;  recsys evaluate --format json > eval.json
    """
    from .data.ingest import ingest as run_ingest
    from .data.schema import EVENT_TYPES
    from .evaluation.report import render_tables, write_html_report
    from .evaluation.runner import evaluate as run
    from .evaluation.runner import make_split, tune

    output = _output_format(output_format, TABLE_OR_JSON, default=OutputFormat.table, what="evaluate")
    ks = tuple(sorted(set(k or [10, 20])))
    if any(value < 1 for value in ks):
        raise InputError("--k values must be at least 1")
    relevant_types = tuple(t.strip() for t in relevant.split(",") if t.strip()) if relevant else None
    for name in relevant_types or ():
        if name not in EVENT_TYPES:
            raise InputError(f"--relevant: unknown event type '{name}' (choose from {', '.join(EVENT_TYPES)})")
    if not 0 < test_fraction < 1:
        raise InputError("--test-fraction must be between 0 and 1")
    if write_config is not None and not do_tune:
        raise InputError("--write-config saves what --tune found; add --tune (or leave --write-config out)")
    if do_tune and write_config is None and config is not None:
        # Before --write-config, `--tune --config FILE` wrote to FILE; it still does (the user named
        # the file), but the default ./recsys.toml is never written.
        _log(f"deprecated: --tune --config {config} writes the winner there; say --write-config {config}")
        write_config = config
        config = config if config.exists() else None
    settings = _settings(config, assignments)
    if write_config is not None:
        _check_writable_config(write_config)
    for target in (json_file, report):
        if target is not None and not target.parent.is_dir():
            raise InputError(f"cannot write {target}: folder {target.parent} does not exist")
    snapshot = run_ingest(data, artifacts, fmt=fmt.value, log=_log, forgotten=_forgotten(data, None))
    events, catalog = snapshot.events(), snapshot.catalog()
    chosen = make_split(events, kind=split.value, test_fraction=test_fraction, test_days=test_days)
    with _status("evaluating") as progress:
        if do_tune:
            winner, trials = tune(events, catalog, settings, split=chosen, k=ks[0], progress=progress)
        results = run(
            events,
            catalog,
            settings,
            split=chosen,
            ks=ks,
            relevant=relevant_types,
            with_peers=with_peers,
            seed=seed,
            progress=progress,
            dataset_summary=snapshot.summary,
        )
    if do_tune:
        results["tune"] = {"winner": winner, "trials": trials}
        if write_config is not None:
            from .config import write_settings

            write_settings(write_config, winner)
            results["tune"]["written_to"] = str(write_config)
    if json_file is not None:
        json_file.write_text(json.dumps(_finite(results), indent=2), encoding="utf-8")
        _log(f"wrote {json_file}")
    if report is not None:
        write_html_report(results, report)
        _log(f"wrote {report}")
    if output is OutputFormat.json:
        _print_json(results)
        return
    out.print(_describe_split(results["split"]), markup=False, highlight=False)
    render_tables(results, out)
    if do_tune:
        table = Table(title=f"--tune: best settings on a validation split (hybrid ndcg@{ks[0]})")
        table.add_column("settings")
        table.add_column(f"ndcg@{ks[0]}", justify="right")
        for trial in trials[:5]:
            table.add_row(_describe_settings(trial["settings"]), f"{trial[f'ndcg@{ks[0]}']:.4f}")
        out.print(table)
        if write_config is not None:
            out.print(f"Wrote the winning settings to {write_config}; `recsys train --config {write_config}` uses them.")
        else:
            out.print("Nothing written: add --write-config FILE to save the winning settings for `recsys train --config FILE`.")


def _check_writable_config(path: Path) -> None:
    """Refuse a --write-config target before any work: its folder must exist and an existing file must be valid settings."""
    from .config import load_settings

    if not path.parent.is_dir():
        raise InputError(f"--write-config {path}: folder {path.parent} does not exist")
    if path.exists():
        load_settings(path)


def _describe_split(split: dict) -> str:
    """One line: which split, where it cut, and how big each part is."""
    train, test = split.get("train", {}), split.get("test", {})
    cutoff = f" at {split['cutoff']}" if split.get("cutoff") else ""
    return (
        f"Split: {split.get('kind')}{cutoff}; train {train.get('events', 0):,} events, "
        f"test {test.get('events', 0):,} events; {split.get('truth_users', 0):,} customers scored "
        f"(relevant: {split.get('relevant')})"
    )


def _describe_settings(settings: dict) -> str:
    """{"router": {"warm_min_products": 5}} -> "router.warm_min_products=5"."""
    parts = []
    for section, entries in settings.items():
        if isinstance(entries, dict):
            parts.extend(f"{section}.{key}={value}" for key, value in entries.items())
        else:
            parts.append(f"{section}={entries}")
    return ", ".join(parts) or "defaults"


def _finite(value: Any) -> Any:
    """JSON has no NaN: replace non-finite floats with null."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    if hasattr(value, "item"):
        return _finite(value.item())
    return value


def _service(artifacts: Path, data: Path | None, assignments: list[str] | None = None) -> Any:
    from .config import serving_changes
    from .live import LiveStore
    from .service import RecommendationService

    changes = serving_changes(assignments or ())
    live = LiveStore.in_folder(data) if data is not None and LiveStore.in_folder(data).exists() else None
    return RecommendationService.load(artifacts, live=live, changes=changes)


RECOMMEND_CSV = ("customer_id", "rank", "product_id", "score", "source", "reason", "model_version")
SIMILAR_CSV = ("similar_to", "rank", "product_id", "score")


@app.command()
@handles_errors
def recommend(
    customer_id: Annotated[str | None, typer.Argument(help="The customer's id, as in events.csv.")] = None,
    n: Annotated[int, typer.Option("-n", "--n", help="How many products (1-1000).")] = 10,
    output_format: OutputOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
    customers_file: Annotated[
        Path | None, typer.Option("--customers-file", help="Batch mode: a file with one customer id per line.", exists=True, dir_okay=False)
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write json, jsonl or csv to this file instead of stdout.")] = None,
    viewed: Annotated[
        list[str] | None,
        typer.Option("--viewed", help="A product viewed in the current session (repeatable): counts as a view; unknown ids are ignored."),
    ] = None,
    artifacts: ArtifactsOpt = Path("artifacts"),
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            "-d",
            help="Data folder whose live store counts (optional): live events, availability, hide lists, forgotten customers "
            "(batch mode: availability and forgotten customers only).",
            envvar="RECSYS_DATA",
        ),
    ] = None,
    assignments: ServedSetOpt = None,
    shuffle: Annotated[
        int | None,
        typer.Option("--shuffle", help="A visit's seed: keep the top half, vary the rest among the next-best products."),
    ] = None,
    category: Annotated[
        list[str] | None, typer.Option("--category", help="Only products whose category path starts with this (repeatable: any of them).")
    ] = None,
    brand: Annotated[list[str] | None, typer.Option("--brand", help="Only this brand (repeatable: any of them).")] = None,
    gender: Annotated[str | None, typer.Option("--gender", help="Only this gender (Man, Woman, Child, Unisex, Other).")] = None,
    min_price: Annotated[float | None, typer.Option("--min-price", help="Lowest price.")] = None,
    max_price: Annotated[float | None, typer.Option("--max-price", help="Highest price.")] = None,
    boost: Annotated[
        list[str] | None,
        typer.Option("--boost", help="A business rule FIELD:VALUE:FACTOR (category, brand or price), on top of [rules]; repeatable."),
    ] = None,
    pin: Annotated[list[str] | None, typer.Option("--pin", help="PRODUCT:SLOT: put a product in that place; repeatable.")] = None,
) -> None:
    """Recommend products for a customer, with the model that chose each one and why.

    Unknown customers get popular products. Batch mode (--customers-file) routes many customers at
    once on the training history. --format: table (default for one customer), json, jsonl (default
    in batch mode: one line per customer) or csv (one row per product); batch mode has no table.
    JSON items have the same fields as the REST API's /recommendations.

    Examples: recsys recommend 123 -n 10 ;  recsys recommend visitor-1 --viewed 29757 ;
    recsys recommend 123 --shuffle 7 (another seed on each visit: the top half stays, the rest varies) ;
    recsys recommend 123 --category Women --category Men --brand Acme (filters, as the REST API's) ;
    recsys recommend 123 --boost brand:Acme:2 --boost price:0-20:0.5 --pin SKU-17:1 (business rules) ;
    recsys recommend --customers-file ids.txt --format csv -o recs.csv
    """
    from .rules import parse_rules
    from .service import Filters, check_n

    n = check_n(n)
    rules = parse_rules(boost or (), pin or (), where="command line")
    filters = Filters(category=tuple(category or ()), brand=tuple(brand or ()), gender=gender, min_price=min_price, max_price=max_price)
    if (customer_id is None) == (customers_file is None):
        raise InputError("give either a CUSTOMER_ID or --customers-file FILE")
    batch = customers_file is not None
    fmt = _output_format(
        _json_alias(output_format, as_json),
        (OutputFormat.json, OutputFormat.jsonl, OutputFormat.csv) if batch else EVERY_FORMAT,
        default=OutputFormat.jsonl if batch else OutputFormat.table,
        what="batch mode (--customers-file)" if batch else "recommend",
    )
    if fmt is OutputFormat.table and output is not None:
        raise InputError("--output writes json, jsonl or csv; add --format json, jsonl or csv")
    if batch and viewed:
        raise InputError("--viewed is for one customer's session; it does not apply to --customers-file")
    if batch and (filters.active() or rules.active()):
        raise InputError("filters and rules (--boost, --pin) apply to one customer's list; not to --customers-file")
    if min_price is not None and max_price is not None and min_price > max_price:
        raise InputError(f"--min-price ({min_price}) is greater than --max-price ({max_price})")
    if batch and shuffle is not None:
        raise InputError("--shuffle varies one visit's list; it does not apply to --customers-file")
    # batch mode routes on the training history; with --data, the live store's availability and deletion list apply
    service = _service(artifacts, data, assignments)
    if batch:
        ids = _read_ids(customers_file)
        with _writer(output) as handle:
            _write_results(handle, _with_progress(service.recommend_many(ids, n), len(ids), to_terminal=output is None), fmt)
        if output:
            _log(f"wrote recommendations for {len(ids):,} customers to {output}")
        return
    viewed = _known_products(service, viewed or ())
    result = service.recommend(customer_id, n, filters=filters, viewed=viewed, shuffle=shuffle, rules=rules)
    if fmt is not OutputFormat.table:
        with _writer(output) as handle:
            _write_results(handle, [result], fmt, one=True)
        return
    table = Table(title=f"Customer {customer_id}: {result['source']} (model {result['model_version']})")
    for column in ("rank", "product", "score", "source", "reason", "brand", "category", "price"):
        table.add_column(column, justify="right" if column in ("rank", "score", "price") else "left")
    for item in result["items"]:
        info = service.product(item["product_id"])
        price = info.get("price")
        table.add_row(
            str(item["rank"]),
            item["product_id"],
            f"{item['score']:.3f}",
            item["source"],
            item["reason"],
            str(info.get("brand", "")),
            str(info.get("category_path", "")),
            f"{price:.2f}" if price is not None else "",
        )
    out.print(table)


def _json_alias(output_format: str | None, as_json: bool) -> str | None:
    """--json is --format json; both together must agree."""
    if not as_json:
        return output_format
    if output_format not in (None, OutputFormat.json.value):
        raise InputError(f"--json means --format json; it contradicts --format {output_format}")
    return OutputFormat.json.value


def _known_products(service: Any, viewed: Sequence[str]) -> list[str]:
    """The --viewed ids the model knows; each unknown one is a warning and is left out, as REST does with such events."""
    from .data.events import check_ids

    ids = check_ids(viewed, "product_id")
    known = [p for p in ids if service.dataset.items.get(p) >= 0]
    for product in dict.fromkeys(p for p in ids if p not in known):
        err.print(f"Warning: --viewed {product}: unknown product (not in the trained data); ignored", markup=False, highlight=False)
    return known


def _read_ids(path: Path) -> list[str]:
    """A --customers-file's ids: one per line, blank lines skipped, a `customer_id` header and a
    UTF-8 byte-order mark dropped."""
    raw = path.read_bytes()
    skipped = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        text = raw[skipped:].decode("utf-8")
    except UnicodeDecodeError as error:
        at = skipped + error.start  # in the file, mark included
        line = raw.count(b"\n", 0, at) + 1
        raise InputError(f"{path}: line {line} is not UTF-8 text (byte {at}: {error.reason}); save the file as UTF-8") from None
    ids = [line.strip() for line in text.splitlines() if line.strip()]
    return ids[1:] if ids and ids[0] == "customer_id" else ids


@contextmanager
def _writer(output: Path | None) -> Iterator[Any]:
    """The output file (created, closed after) or stdout."""
    if output is None:
        yield sys.stdout
        return
    with open(output, "w", encoding="utf-8", newline="") as handle:
        yield handle


def _with_progress(results: Iterable[dict], total: int, *, to_terminal: bool) -> Iterable[dict]:
    """`results` unchanged; a progress bar on stderr when it is a terminal (and the results are not going to that terminal)."""
    if not err.is_terminal or (to_terminal and sys.stdout.isatty()) or total < 1000:
        yield from results
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("customers"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err, transient=True) as bar:
        task = bar.add_task("customers", total=total)
        for done, result in enumerate(results, start=1):
            yield result
            if done % 500 == 0 or done == total:
                bar.update(task, completed=done)


def _write_results(handle: Any, results: Iterable[dict], fmt: OutputFormat, *, one: bool = False) -> None:
    """Service results as json (one document; a list in batch mode), jsonl (one line each) or csv (one row per product)."""
    import csv

    if fmt is OutputFormat.json:
        listed = list(results)
        handle.write(json.dumps(listed[0] if one else listed, indent=2) + "\n")
        return
    if fmt is OutputFormat.jsonl:
        for result in results:
            handle.write(json.dumps(result) + "\n")
        return
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(RECOMMEND_CSV)
    for result in results:
        writer.writerows(
            (
                _cell(result["customer_id"]),
                item["rank"],
                _cell(item["product_id"]),
                item["score"],
                _cell(item["source"]),
                _cell(item["reason"]),
                _cell(str(result.get("model_version", ""))),
            )
            for item in result["items"]
        )


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(text: str) -> str:
    """A text cell a spreadsheet will not run as a formula: a leading ' when it starts with = + - @ tab or CR (OWASP CSV injection)."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


@app.command()
@handles_errors
def similar(
    product_id: Annotated[str, typer.Argument(help="The product's id, as in catalog.csv.")],
    other_id: Annotated[str | None, typer.Argument(help="A second product: print the pair's similarity instead.")] = None,
    n: Annotated[int, typer.Option("-n", "--n", help="How many similar products (1-1000).")] = 10,
    output_format: OutputOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
    artifacts: ArtifactsOpt = Path("artifacts"),
) -> None:
    """Products similar to PRODUCT_ID by category, brand, gender and price, or the similarity of two products.

    --format: table (default), json (as the REST API's /products/ID/similar, plus model_version),
    jsonl (the same on one line) or csv (one row per product, or one row for a pair).

    Examples: recsys similar 19685 -n 5 ;  recsys similar 19685 20012
    """
    import csv

    fmt = _output_format(_json_alias(output_format, as_json), EVERY_FORMAT, default=OutputFormat.table, what="similar")
    service = _service(artifacts, None)
    if other_id is not None:
        result = {**service.similarity(product_id, other_id), "model_version": service.version}
        if fmt in (OutputFormat.json, OutputFormat.jsonl):
            typer.echo(json.dumps(result, indent=2 if fmt is OutputFormat.json else None))
        elif fmt is OutputFormat.csv:
            writer = csv.writer(sys.stdout, lineterminator="\n")
            writer.writerow(("product_id", "other_id", "similarity", *result["parts"]))
            writer.writerow((_cell(product_id), _cell(other_id), result["similarity"], *result["parts"].values()))
        else:
            table = Table(title=f"Similarity of {product_id} and {other_id}: {result['similarity']:.3f}")
            table.add_column("feature")
            table.add_column("similarity", justify="right")
            for feature, value in result["parts"].items():
                table.add_row(feature, f"{value:.3f}")
            out.print(table)
        return
    items = service.similar(product_id, n)
    if fmt in (OutputFormat.json, OutputFormat.jsonl):
        payload = {"product_id": product_id, "model_version": service.version, "items": items}
        typer.echo(json.dumps(payload, indent=2 if fmt is OutputFormat.json else None))
        return
    if fmt is OutputFormat.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(SIMILAR_CSV)
        writer.writerows((_cell(product_id), item["rank"], _cell(item["product_id"]), item["score"]) for item in items)
        return
    table = Table(title=f"Similar to {product_id} ({_describe(service.product(product_id))})")
    for column in ("rank", "product", "score", "brand", "category", "gender", "price"):
        table.add_column(column, justify="right" if column in ("rank", "score", "price") else "left")
    for item in items:
        info = service.product(item["product_id"])
        price = info.get("price")
        table.add_row(
            str(item["rank"]),
            item["product_id"],
            f"{item['score']:.3f}",
            str(info.get("brand", "")),
            str(info.get("category_path", "")),
            str(info.get("gender", "")),
            f"{price:.2f}" if price is not None else "",
        )
    out.print(table)


def _print_ranked(
    fmt: OutputFormat,
    payload: dict,
    *,
    title: str,
    score_label: str,
    count: tuple[str, str],
    lead: tuple[str, str] | None = None,
) -> None:
    """A ranked product list (trending, bought-together): `payload` as JSON, or rows of rank,
    product, score and the `count` field (key, column label), in CSV (led by `lead`'s column) or a table."""
    import csv

    items, (key, label) = payload["items"], count
    if fmt in (OutputFormat.json, OutputFormat.jsonl):
        typer.echo(json.dumps(payload, indent=2 if fmt is OutputFormat.json else None))
    elif fmt is OutputFormat.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        first = (lead[0],) if lead else ()
        writer.writerow((*first, "rank", "product_id", "score", key))
        lead_cell = (_cell(lead[1]),) if lead else ()
        writer.writerows((*lead_cell, i["rank"], _cell(i["product_id"]), i["score"], i[key]) for i in items)
    else:
        table = Table(title=title)
        for column in ("rank", "product", score_label, label, "brand", "category"):
            table.add_column(column, justify="right" if column in ("rank", score_label, label) else "left")
        for item in items:
            table.add_row(
                str(item["rank"]),
                item["product_id"],
                f"{item['score']:.2f}",
                str(item[key]),
                str(item.get("brand", "")),
                str(item.get("category_path", "")),
            )
        out.print(table)


@app.command()
@handles_errors
def trending(
    n: Annotated[int, typer.Option("-n", "--n", help="How many products (1-1000).")] = 10,
    window: Annotated[str, typer.Option("--window", "-w", help="How far back: a number and m, h, d or w (7d, 12h, 2w).")] = "7d",
    output_format: OutputOpt = None,
    artifacts: ArtifactsOpt = Path("artifacts"),
) -> None:
    """Products whose share of customers rose most in the last --window of the training history.

    --format: table (default), json (as the REST API's /trending), jsonl or csv.

    Examples: recsys trending ;  recsys trending --window 30d -n 20 --format json
    """

    fmt = _output_format(output_format, EVERY_FORMAT, default=OutputFormat.table, what="trending")
    service = _service(artifacts, None)
    items = service.trending(n, window=window)
    _print_ranked(
        fmt,
        {"window": window, "model_version": service.version, "items": items},
        title=f"Trending over the last {window}" + ("" if items else ": nothing qualifies"),
        score_label="x usual share",
        count=("customers", "customers"),
    )


@app.command("recently-viewed")
@handles_errors
def recently_viewed(
    customer_id: Annotated[str, typer.Argument(help="The customer's id, as in events.csv.")],
    n: Annotated[int, typer.Option("-n", "--n", help="How many products (1-1000).")] = 10,
    output_format: OutputOpt = None,
    artifacts: ArtifactsOpt = Path("artifacts"),
    data: Annotated[
        Path | None, typer.Option("--data", "-d", help="Data folder whose live events count (optional).", envvar="RECSYS_DATA")
    ] = None,
) -> None:
    """The products CUSTOMER_ID interacted with, newest first, with the strongest event of each.

    --format: table (default), json (as the REST API's /customers/ID/recently-viewed), jsonl or csv.

    Examples: recsys recently-viewed 123 -n 5 ;  recsys recently-viewed 123 --data data --format json
    """
    import csv

    fmt = _output_format(output_format, EVERY_FORMAT, default=OutputFormat.table, what="recently-viewed")
    service = _service(artifacts, data)
    items = service.recently_viewed(customer_id, n)
    if fmt in (OutputFormat.json, OutputFormat.jsonl):
        payload = {"customer_id": customer_id, "model_version": service.version, "items": items}
        typer.echo(json.dumps(payload, indent=2 if fmt is OutputFormat.json else None))
    elif fmt is OutputFormat.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(("customer_id", "rank", "product_id", "last_seen", "event"))
        writer.writerows((_cell(customer_id), i["rank"], _cell(i["product_id"]), i["last_seen"], i["event"]) for i in items)
    else:
        table = Table(title=f"Recently viewed by {customer_id}" + ("" if items else ": nothing yet"))
        for column in ("rank", "product", "last seen", "event", "brand", "category", "price"):
            table.add_column(column, justify="right" if column in ("rank", "price") else "left")
        for item in items:
            price = item.get("price")
            table.add_row(
                str(item["rank"]),
                item["product_id"],
                item["last_seen"],
                item["event"],
                str(item.get("brand", "")),
                str(item.get("category_path", "")),
                f"{price:.2f}" if price is not None else "",
            )
        out.print(table)


def _shop_service(artifacts: Path, data: Path, live_store: str | None) -> Any:
    """The service with the live store the server uses (created when absent): for commands that change it."""
    from .live import open_live_store
    from .service import RecommendationService

    return RecommendationService.load(artifacts, live=open_live_store(data, live_store))


@app.command()
@handles_errors
def availability(
    product_ids: Annotated[list[str], typer.Argument(help="Product ids, as in catalog.csv.")],
    available: Annotated[
        bool | None, typer.Option("--on/--off", help="Make them available (--on) or unavailable (--off); neither: show.")
    ] = None,
    output_format: OutputOpt = None,
    artifacts: ArtifactsOpt = Path("artifacts"),
    data: DataOpt = Path("data"),
    live_store: LiveStoreOpt = None,
) -> None:
    """Make products unavailable (never recommended; their events still train) or available again, or show it.

    Written to the live store a running server reads (SQLite in --data, or --live-store), so it
    counts from the server's next request, without retraining; it overrides the catalog's
    `available` column. --format: table (default) or json.

    Examples: recsys availability SKU-17 --off ;  recsys availability SKU-17 SKU-18 --on ;  recsys availability SKU-17
    """
    fmt = _output_format(output_format, TABLE_OR_JSON, default=OutputFormat.table, what="availability")
    service = _shop_service(artifacts, data, live_store)
    if available is not None:
        service.set_availability(product_ids, available)
    states = [service.availability(product_id) for product_id in dict.fromkeys(product_ids)]
    if fmt is OutputFormat.json:
        _print_json(states)
        return
    for state in states:
        out.print(f"{state['product_id']}: {'available' if state['available'] else 'unavailable'}", markup=False, highlight=False)


@app.command("bought-together")
@handles_errors
def bought_together(
    product_id: Annotated[str, typer.Argument(help="The product's id, as in catalog.csv.")],
    n: Annotated[int, typer.Option("-n", "--n", help="How many products (1-1000).")] = 10,
    output_format: OutputOpt = None,
    artifacts: ArtifactsOpt = Path("artifacts"),
    data: Annotated[
        Path | None,
        typer.Option("--data", "-d", help="Data folder whose live store says what is unavailable (optional).", envvar="RECSYS_DATA"),
    ] = None,
) -> None:
    """Products bought in the same basket (same customer, same day) as PRODUCT_ID, most often first.

    Counted at train time (a pair needs bought_together.min_support baskets). --format: table
    (default), json (as the REST API's /products/ID/bought-together), jsonl or csv.

    Examples: recsys bought-together 29757 ;  recsys bought-together 29757 -n 5 --format json
    """

    fmt = _output_format(output_format, EVERY_FORMAT, default=OutputFormat.table, what="bought-together")
    service = _service(artifacts, data)
    items = service.bought_together(product_id, n)
    _print_ranked(
        fmt,
        {"product_id": product_id, "model_version": service.version, "items": items},
        title=f"Bought together with {product_id}" + ("" if items else ": nothing often enough"),
        score_label="share",
        count=("baskets", "baskets"),
        lead=("bought_with", product_id),
    )


@app.command()
@handles_errors
def forget(
    customer_id: Annotated[str, typer.Argument(help="The customer's id.")],
    output_format: OutputOpt = None,
    artifacts: ArtifactsOpt = Path("artifacts"),
    data: DataOpt = Path("data"),
    live_store: LiveStoreOpt = None,
) -> None:
    """Forget a customer (a deletion request): live events and hide list removed now, events dropped from the next snapshot and model.

    Their hash joins the deletion list in the live store (SQLite in --data, or --live-store);
    `ingest`, `train` and `evaluate` drop their events up to now from every later snapshot, and a
    running server answers them as an unknown customer from its next request. The log names
    them by hash only. Same as DELETE /customers/ID. --format: table (default) or json.

    Example: recsys forget cust-1 ;  then, to rebuild the model without them: recsys train
    """
    fmt = _output_format(output_format, TABLE_OR_JSON, default=OutputFormat.table, what="forget")
    result = _shop_service(artifacts, data, live_store).forget(customer_id)
    if fmt is OutputFormat.json:
        _print_json(result)
        return
    out.print(
        f"forgotten (sha256 {result['customer_hash']}): {result['live_events_removed']:,} live events removed; "
        "their other events leave the next snapshot and model at the next `recsys train`",
        markup=False,
        highlight=False,
    )


@app.command()
@handles_errors
def hide(
    customer_id: Annotated[str, typer.Argument(help="The customer's id.")],
    product_ids: Annotated[list[str] | None, typer.Argument(help="Products never to recommend to them; none: show the list.")] = None,
    output_format: OutputOpt = None,
    artifacts: ArtifactsOpt = Path("artifacts"),
    data: DataOpt = Path("data"),
    live_store: LiveStoreOpt = None,
) -> None:
    """Hide products from one customer for good (their recommendations and recently-viewed), or show their hide list.

    Written to the live store a running server reads (SQLite in --data, or --live-store): counts
    from the server's next request. Same as POST /customers/ID/hidden. --format: table (default) or json.

    Examples: recsys hide cust-1 SKU-17 SKU-18 ;  recsys hide cust-1
    """
    fmt = _output_format(output_format, TABLE_OR_JSON, default=OutputFormat.table, what="hide")
    service = _shop_service(artifacts, data, live_store)
    result = service.hide(customer_id, product_ids) if product_ids else service.hidden(customer_id)
    if fmt is OutputFormat.json:
        _print_json(result)
        return
    hidden = result["product_ids"]
    out.print(f"{customer_id}: {', '.join(hidden) if hidden else 'nothing hidden'}", markup=False, highlight=False)


def _describe(info: dict) -> str:
    return ", ".join(str(info[k]) for k in ("brand", "category_path", "gender") if k in info) or "no catalog data"


@app.command()
@handles_errors
def serve(
    artifacts: ArtifactsOpt = Path("artifacts"),
    data: DataOpt = Path("data"),
    host: Annotated[str, typer.Option(help="Address to bind; the default serves this machine only.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 5000,
    workers: Annotated[int, typer.Option(help="Worker processes sharing the port.")] = 1,
    threads: Annotated[
        int,
        typer.Option(
            help="Threads per worker. Requests are CPU work under Python's GIL, so more threads only queue; raise it when the live store is a remote PostgreSQL."
        ),
    ] = 2,
    live_store: LiveStoreOpt = None,
    access_log: Annotated[
        bool,
        typer.Option(
            "--access-log/--no-access-log",
            help="One log line per request. It costs a fast request about a sixth of its time: leave it out behind a proxy that logs.",
        ),
    ] = True,
    get_path: Annotated[
        str | None, typer.Option("--get", help="Perform one GET request in-process, print the JSON, exit non-zero unless 2xx.")
    ] = None,
    assignments: ServedSetOpt = None,
) -> None:
    """Serve recommendations over HTTP (granian), with live events and hot model swaps.

    Examples: recsys serve --port 5000 ;  recsys serve --get /recommendations/186788?n=3
    """
    from .config import serving_changes
    from .server import get
    from .server import serve as run

    changes = serving_changes(assignments or ()) or None
    if get_path is not None:
        status, body = get(get_path, artifacts, data, live_store=live_store, settings=changes)
        _print_json(body) if not isinstance(body, str) else out.print(body, markup=False)
        if not 200 <= status < 300:
            raise typer.Exit(1)
        return
    if not 1 <= port <= 65535:
        raise InputError(f"--port must be 1..65535, got {port}")
    if workers < 1 or threads < 1:
        raise InputError("--workers and --threads must be at least 1")
    run(
        artifacts,
        data,
        host=host,
        port=port,
        workers=workers,
        threads=threads,
        live_store=live_store,
        settings=changes,
        access_log=access_log,
    )


if __name__ == "__main__":  # pragma: no cover
    app()
