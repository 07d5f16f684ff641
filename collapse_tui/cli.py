"""Command line: ``collapse-tui`` opens the terminal UI, ``collapse-tui --batch CONFIG`` runs headless.
The backend is chosen here, before keras loads."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
import threading
from typing import Any, Sequence
from pathlib import Path

from collapse_tui.engine.backend_check import BACKENDS, backend_problem

DESCRIPTION = """\
Study interpretability collapse: train a VAE on a ground-truth dataset, train
sparse autoencoders on its representation at increasing sparsity (Top-k or L1),
and measure dead neurons, L0, reconstruction and MIG. Every run is written to
RUNS_DIR/<timestamp>-<name>/ (config.yaml, events.jsonl, summary.json and the
trained sae.keras)."""

EPILOG = """\
presets (shipped with the package; run one by name from any directory):
{presets}

examples:
  collapse-tui                          the terminal UI: configure, train, look
  collapse-tui my.yaml --runs-dir DIR   the UI with my.yaml in its form
  collapse-tui --batch quick            the embedded default (minutes on a CPU)
  collapse-tui --batch paper_quick      the paper's study scaled down (~20 min)
  collapse-tui --batch my.yaml --dry-run          validate, one line per run
  collapse-tui --batch my.yaml --backend jax --runs-dir /scratch/runs
  collapse-tui --batch quick --data-dir ~/data    use the official files there
  collapse-tui --batch my.yaml --ray              a Ray task per bank, here
  collapse-tui --batch my.yaml --ray auto --ray-gpus 0.25 --runs-dir /shared
  collapse-tui --batch my.yaml --data-parallel    one model over every GPU
  collapse-tui --follow runs/<run or sweep dir>   watch another process's run
  collapse-tui --resume runs/<run or sweep dir>   go on after a stop or a crash
  collapse-tui --table runs/sweeps/<sweep dir>    a sweep's table again
  collapse-tui --compare runs/sweeps/<sweep dir>  its runs side by side
  collapse-tui --prepare-tfds dsprites --manual-dir ~/data   tfds copy, offline

data: with data.source auto (the default) a run takes the official file if it
finds one (data.path, --data-dir, then $COLLAPSE_TUI_DATA), else a prepared
tensorflow-datasets copy, else renders the images procedurally (cached under
$COLLAPSE_TUI_CACHE, default ~/.cache/collapse-tui); it says which it used.

exit status: 0 all runs ok, 1 a run failed, 2 invalid input (or nothing to
resume), 130 stopped with Ctrl-C, 143 stopped by SIGTERM or SIGHUP, 141 stopped
because the output's reader went away (| head).
The Keras backend is KERAS_BACKEND unless --backend is given."""


def directory(text: str) -> str:
    """An argparse type for a directory: not empty, ``~`` expanded."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return os.path.expanduser(text)


def build_parser() -> argparse.ArgumentParser:
    from collapse_tui.config import DATASET_NAMES
    from collapse_tui.config.presets import presets

    parser = argparse.ArgumentParser(
        prog="collapse-tui", description=DESCRIPTION,
        epilog=EPILOG.format(presets=textwrap.fill(", ".join(presets()), 79, initial_indent="  ",
                                                   subsequent_indent="  ")),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", nargs="?", metavar="CONFIG",
                        help="a YAML config to load into the terminal UI's form (default: the quick preset)")
    parser.add_argument("--batch", metavar="CONFIG", help="run CONFIG (a YAML file, sweep included) headless")
    parser.add_argument("--resume", metavar="DIR",
                        help="continue a stopped or crashed run from its last checkpoint (a run directory), "
                             "or finish a sweep (a sweep directory): finished runs are skipped, "
                             "interrupted ones resumed, the rest started")
    parser.add_argument("--follow", metavar="DIR", help="open the terminal UI on the live view of DIR, a run "
                                                       "directory another process writes (the latest run of a "
                                                       "sweep: the sweep's next runs too) or a sweep directory")
    parser.add_argument("--compare", metavar="DIR", nargs="+",
                        help="open the terminal UI's compare screen on these run directories; a sweep "
                             "directory (RUNS_DIR/sweeps/...) stands for all its runs")
    parser.add_argument("--table", metavar="DIR",
                        help="print the results table (mean ± std over seeds) of a sweep directory, rewriting "
                             "its results.md and results.csv, or of every run in a runs dir: the key columns "
                             "first, then as many as the terminal fits")
    parser.add_argument("--columns", metavar="A,B,...", help="with --table: exactly these columns (by header)")
    parser.add_argument("--all", action="store_true", help="with --table: every column, however wide")
    parser.add_argument("--format", choices=("md", "csv"),
                        help="with --table: Markdown (with the table's notes) or CSV, for a file")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="with --batch or --resume: a line per epoch and evaluation of every run; with "
                             "--dry-run: each run's full YAML")
    parser.add_argument("--runs-dir", metavar="DIR", type=directory,
                        help="write runs here instead of the config's runs_dir")
    parser.add_argument("--backend", choices=BACKENDS, help="Keras backend (default: $KERAS_BACKEND or tensorflow)")
    parser.add_argument("--dry-run", action="store_true", help="with --batch: validate, print the resolved runs, exit")
    ray = parser.add_argument_group("Ray", textwrap.fill(
        "with --batch: run the sweep's banks as tasks on Ray (pip install 'collapse-tui[ray]'); runs_dir and "
        "models_dir must be on a filesystem every node shares", 79))
    ray.add_argument("--ray", metavar="ADDRESS", nargs="?", const="",
                     help="no ADDRESS: start a Ray instance on this machine; else join that cluster (auto, "
                          "HOST:PORT, ray://HOST:PORT), refused if it accepts no connection within 5 s")
    ray.add_argument("--ray-cpus", metavar="N", type=float, default=1.0, help="CPUs per task (default 1)")
    ray.add_argument("--ray-gpus", metavar="N", type=float, default=0.0,
                     help="GPUs per task, a fraction to share one (default 0)")
    ray.add_argument("--ray-retries", metavar="N", type=int, default=2,
                     help="times a task whose worker died is started again, resuming its runs (default 2)")
    parser.add_argument("--data-parallel", action="store_true",
                        help="with --batch: train every run data-parallel over all local accelerators (JAX "
                             "backend; as data_parallel: true in the config)")
    parser.add_argument("--yes", action="store_true",
                        help="with --batch or --resume: start more than 1,000 runs without asking")
    parser.add_argument("--data-dir", metavar="DIR", type=directory,
                        help="where to look for official dataset files and prepared tfds copies "
                             "(for runs whose config sets no data.path)")
    parser.add_argument("--prepare-tfds", metavar="DATASET", choices=DATASET_NAMES,
                        help="prepare a tensorflow-datasets copy of DATASET from its official file in "
                             "--manual-dir, offline, into --data-dir (default: tfds' own data dir)")
    parser.add_argument("--manual-dir", metavar="DIR", type=directory,
                        help="with --prepare-tfds: the directory holding the official file")
    parser.add_argument("--export", nargs=3, metavar=("FORMAT", "DIR", "OUT_DIR"),
                        help="write DIR to OUT_DIR for another tool. FORMAT: saelens (a run's SAE as cfg.json + "
                             "sae_weights.safetensors), tensorboard (a run's, sweep's or runs dir's runs as event "
                             "files, a sweep's settings as HParams), wandb (the same as offline runs for wandb sync)")
    parser.add_argument("--import-sae", nargs=2, metavar=("SAE_DIR", "CONFIG"),
                        help="measure a SAELens or sparsify SAE (SAE_DIR) as a run on CONFIG's activations file: "
                             "dead, L0, EV and, with factors, every interpretability metric")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    return parser


EXIT_READER_GONE = 141  # as a shell reports a command killed by SIGPIPE


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default: the process's arguments); returns the exit status.

    What it writes degrades to ASCII stand-ins where the terminal's encoding cannot show a character.
    A reader of its output that goes away (``| head -1``) stops the runs in progress as Ctrl-C does
    (they end ``stopped``, resumable); the status is then :data:`EXIT_READER_GONE`."""
    from collapse_tui.engine.output_streams import guarded_output, keep_writable

    keep_writable(sys.stdout, sys.stderr)
    stop = threading.Event()
    with guarded_output(stop.set) as reader_gone:
        try:
            status = _main(argv, stop)
        except SystemExit:  # argparse's --help, or its usage line
            if not reader_gone.is_set():
                raise
        if reader_gone.is_set():
            print("collapse-tui: standard output was closed (its reader went away): stopped as by Ctrl-C",
                  file=sys.stderr)
            return EXIT_READER_GONE
    return status


def _main(argv: list[str] | None, stop: threading.Event) -> int:
    """:func:`main`, its output guarded; ``stop``: set when the runs in progress are to stop."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from collapse_tui import __version__

        print(f"collapse-tui {__version__}")
        return 0
    refused = conflict(args)
    if refused:
        print(f"collapse-tui: {refused}", file=sys.stderr)
        return 2
    # Both must be set before anything imports keras (or TensorFlow, which logs to stderr at import).
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "keras" in sys.modules and args.backend:
        import keras

        if keras.backend.backend() != args.backend:
            print(f"collapse-tui: keras is already loaded with backend {keras.backend.backend()}", file=sys.stderr)
            return 2
    if (args.batch or args.resume or not _viewer_only(args)) and "keras" not in sys.modules:
        problem = backend_problem()  # before Keras is imported: one line, not a traceback from inside it
        if problem:
            print(f"collapse-tui: {problem}", file=sys.stderr)
            return 2
    if args.batch:
        from collapse_tui import batch

        ray = None
        if args.ray is not None:
            from collapse_tui.engine.ray_sweep import RayOptions

            ray = RayOptions(address=args.ray or None, cpus=args.ray_cpus, gpus=args.ray_gpus,
                             max_retries=args.ray_retries)
        return batch.main(args.batch, runs_dir=args.runs_dir, dry_run=args.dry_run, data_dir=args.data_dir,
                          yes=args.yes, ray=ray, data_parallel=args.data_parallel, verbose=args.verbose, stop=stop)
    if args.resume:
        from collapse_tui import batch
        from collapse_tui.engine.environment import quiet_native_logs

        with quiet_native_logs():
            import keras  # noqa: F401

        return batch.resume(args.resume, verbose=args.verbose, stop=stop, yes=args.yes)
    if args.export or args.import_sae:
        from collapse_tui.interop import export_run, import_runs

        return export_run(*args.export) if args.export else import_runs(*args.import_sae, runs_dir=args.runs_dir)
    if args.prepare_tfds:
        return _prepare_tfds(parser, args)
    if args.table:
        return _table(args.table, args.format, args.columns, args.all)
    return _terminal_ui(parser, args)


def _viewer_only(args) -> bool:
    """Modes that read what runs wrote and never train (no Keras needed): tables, --follow, --compare,
    preparing a tfds copy."""
    return bool(args.table or args.follow or args.compare or args.prepare_tfds)


# The modes: one at a time. The options that belong to one mode, and which.
MODES = {"batch": "--batch", "resume": "--resume", "follow": "--follow", "compare": "--compare",
         "table": "--table", "prepare_tfds": "--prepare-tfds", "export": "--export", "import_sae": "--import-sae",
         "config": "CONFIG (the terminal UI's form)"}
MODE_OPTIONS = {"dry_run": ("--dry-run", ("batch",)), "ray": ("--ray", ("batch",)),
                "data_parallel": ("--data-parallel", ("batch",)), "yes": ("--yes", ("batch", "resume")),
                "verbose": ("--verbose", ("batch", "resume")), "columns": ("--columns", ("table",)),
                "all": ("--all", ("table",)), "format": ("--format", ("table",)),
                "manual_dir": ("--manual-dir", ("prepare_tfds",))}


def conflict(args: argparse.Namespace) -> str | None:
    """What is wrong with the combination of options given (two modes, an option without its mode), in
    one line; None when nothing is."""
    given = [mode for mode in MODES if getattr(args, mode)]
    # The terminal UI opens with a config in its form and, at once, a run followed or runs compared.
    clashing = [] if set(given) in ({"config", "follow"}, {"config", "compare"}) else given
    if len(clashing) > 1:
        return f"{MODES[clashing[0]]} and {MODES[clashing[1]]} do not go together: give one of them"
    for option, (flag, modes) in MODE_OPTIONS.items():
        value = getattr(args, option)
        if value is not None and value is not False and not set(modes) & set(given):
            return f"{flag} goes with {' or '.join(MODES[m] for m in modes)}"
    if args.columns and args.all:
        return "--columns and --all do not go together: give one of them"
    if args.format and (args.columns or args.all):
        return "--format writes every column; --columns and --all are for the terminal"
    return None


def _terminal_ui(parser: argparse.ArgumentParser, args) -> int:
    # What is wrong with the directories given is said first: it holds wherever the UI would open.
    for path, what in ((args.follow, "run or sweep directory"),
                       *((p, "run directory") for p in args.compare or ())):
        if path is not None and not os.path.exists(path):
            print(f"collapse-tui: {what} {path} does not exist", file=sys.stderr)
            return 2
    if args.follow is not None and not followable(args.follow):
        print(f"collapse-tui: --follow: {args.follow} is not a run or sweep directory", file=sys.stderr)
        return 2
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        parser.print_usage(sys.stderr)
        print("collapse-tui: the terminal UI needs an interactive terminal; to run without one use "
              "--batch CONFIG", file=sys.stderr)
        return 2
    if args.config is not None:
        from collapse_tui.config.presets import resolve_config

        try:
            args.config = str(resolve_config(args.config))  # a file, or a shipped preset by name
        except FileNotFoundError as exc:
            print(f"collapse-tui: {exc}", file=sys.stderr)
            return 2
        if not os.path.isfile(args.config):
            print(f"collapse-tui: config file {args.config} does not exist", file=sys.stderr)
            return 2
    compare = None
    if args.compare:
        try:
            compare = compared_runs(args.compare)
        except ValueError as exc:
            print(f"collapse-tui: {exc}", file=sys.stderr)
            return 2
    from collapse_tui.tui.app import run_app

    return run_app(runs_dir=args.runs_dir, config_path=args.config, follow=args.follow, compare=compare)


def followable(path: str) -> bool:
    """Whether ``--follow`` can watch ``path``: a sweep directory, or a run directory (one that holds a
    run's config, events or summary: another process has begun writing it)."""
    from collapse_tui.store import is_sweep_dir
    from collapse_tui.store.layout import CONFIG_FILE, EVENTS_FILE, SUMMARY_FILE, run_file

    if not os.path.isdir(path):
        return False
    return is_sweep_dir(path) or any(run_file(path, f).is_file() for f in (CONFIG_FILE, EVENTS_FILE, SUMMARY_FILE))


def compared_runs(paths: list[str]):
    """The run records behind ``--compare``: run directories as given, sweep directories expanded.
    At least two must be readable; raises ValueError saying what is wrong otherwise."""
    from collapse_tui.store import is_sweep_dir, load_run, sweep_records

    records, problems = [], []
    for path in paths:
        for rec in sweep_records(path) if is_sweep_dir(path) else [_try_load(load_run, path)]:
            if rec.error:
                problems.append(rec.error)
            else:
                records.append(rec)
    if len(records) < 2:
        detail = f" ({'; '.join(problems)})" if problems else ""
        raise ValueError(f"--compare needs at least two readable run directories, got {len(records)}{detail}")
    return records


def _try_load(load_run, path):
    from collapse_tui.store import RunRecord

    try:
        return load_run(path)
    except ValueError as exc:
        return RunRecord(path=Path(path), error=str(exc))


def _table(path: str, fmt: str | None = None, columns: str | None = None, show_all: bool = False) -> int:
    """Print a sweep's (or a runs dir's) results table: fitted to the terminal, or as Markdown or CSV
    (``fmt``); a sweep directory's files are rewritten too."""
    from collapse_tui.report import (build_rows, csv_table, has_comparisons, paired_csv, report_markdown, sweep_title,
                                     table_title, write_report)
    from collapse_tui.store import is_sweep_dir, list_runs, sweep_records
    from collapse_tui.store.layout import PAIRED_CSV, RESULTS_CSV, RESULTS_MD

    target = Path(path)
    if not target.is_dir():
        print(f"collapse-tui: {path} is not a directory (a sweep directory or a runs dir)", file=sys.stderr)
        return 2
    if is_sweep_dir(target):
        try:
            records = sweep_records(target)
        except ValueError as exc:
            print(f"collapse-tui: {exc}", file=sys.stderr)
            return 2
        title = sweep_title(target)
        try:
            write_report(target, records, title=title)
            written = f"written: {target / RESULTS_MD}, {target / RESULTS_CSV}, {target / PAIRED_CSV}"
        except OSError as exc:  # a read-only copy, a directory in a table file's place: the table is still shown
            written = (f"collapse-tui: the sweep's tables were not rewritten ({exc.filename2 or exc.filename}: "
                       f"{exc.strerror or exc})")
    else:
        records = list_runs(target, include_unreadable=True)
        if not records:
            print(f"collapse-tui: no runs in {path}", file=sys.stderr)
            return 2
        title, written = table_title(str(target)), None
    rows, left_out = build_rows(records)
    paired = has_comparisons(rows)  # some remedy row has a plain row at its settings to be compared with
    if fmt == "md":
        print(report_markdown(rows, left_out, title=title))  # the paired section is part of results.md
    elif fmt == "csv":
        print(csv_table(rows), end="")
        if paired:
            print()
            print(paired_csv(rows), end="")
    else:
        from collapse_tui.batch import consoles

        console, _ = consoles()
        try:
            table = sweep_table(rows, console, columns=columns.split(",") if columns else None, show_all=show_all)
        except ValueError as exc:
            print(f"collapse-tui: {exc}", file=sys.stderr)
            return 2
        console.print(title, markup=False)
        console.print(table, soft_wrap=show_all)
        if left_out:
            console.print(f"{len(left_out)} run(s) left out (not finished, or no result); --format md lists them")
        if paired:
            from collapse_tui.report import PAIRED_TITLE, comparisons

            console.print()
            console.print(PAIRED_TITLE, markup=False)
            console.print(paired_table(rows, console, show_all=show_all), soft_wrap=show_all)
            missing = sum(plain is None for _, plain in comparisons(rows))
            if missing:
                console.print(f"{missing} remedy row(s) without a plain run at the same settings; --format md "
                              "names them", markup=False)
            console.print("Δ remedy − plain, paired by seed: mean [95% t-interval] p (two-sided paired t)",
                          style="dim", markup=False)
        console.print("--all: every column; --columns A,B: these; --format md|csv: for a file", style="dim")
    if written:
        print(written, file=sys.stderr)
    return 0


def _prepare_tfds(parser: argparse.ArgumentParser, args) -> int:
    if not args.manual_dir:
        parser.error("--prepare-tfds needs --manual-dir DIR, the directory holding the official file")
    from collapse_tui.data import DatasetFileError, DatasetUnavailable, tfds_source
    from collapse_tui.engine.environment import quiet_native_logs

    with quiet_native_logs():  # TensorFlow's start-up lines; preparation's own progress stays visible
        import tensorflow_datasets  # noqa: F401
    try:
        target = tfds_source.prepare(args.prepare_tfds, args.manual_dir, data_dir=args.data_dir)
    except (DatasetFileError, DatasetUnavailable) as err:
        print(f"collapse-tui: {err}", file=sys.stderr)
        return 1
    print(f"prepared {args.prepare_tfds} in {target}; runs with data.source tfds or auto will use it"
          + (f" when given --data-dir {args.data_dir}" if args.data_dir else ""))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())


# A sweep table's columns a reader needs first; the others follow while the terminal has room.
KEY_COLUMNS = ("dataset", "method", "remedy", "k / λ", "setting", "seeds", "dead %", "L0", "EV")


def sweep_table(rows, console, columns: Sequence[str] | None = None, show_all: bool = False) -> Any:
    """A sweep's table (:func:`~collapse_tui.report.table_cells`: mean ± std over seeds) for the terminal:
    the key columns first, then as many of the others as fit ``console``; ``columns``: exactly these
    (headers, in this order; ValueError naming an unknown one); ``show_all``: every column, unfitted.
    Unless columns are named, a descriptive column with one value in every row (one dataset, no remedy)
    is said once in the table's title instead."""
    from collapse_tui.metrics.specs import DEAD
    from collapse_tui.report import table_cells

    headers, texts, _ = table_cells(rows)
    common = _common(headers, texts) if columns is None else {}
    dead_first = next((h for h in headers if h.startswith(DEAD.label)), None)
    keys = [dead_first if k == DEAD.label else k for k in KEY_COLUMNS]
    if columns is not None:
        unknown = [c for c in columns if c not in headers]
        if unknown:
            raise ValueError(f"no column {', '.join(map(repr, unknown))}; the columns: {', '.join(headers)}")
        order = list(columns)
    else:
        order = [h for h in keys if h in headers and h not in common] + [h for h in headers if h not in keys]
    fixed = len(order) if columns is not None or show_all else sum(h in keys for h in order)
    title = "  ".join(f"{h}: {v}" for h, v in common.items()) or None
    return _fitted(headers, texts, order, fixed, title, console)


def _common(headers: list[str], texts: list[list[str]]) -> dict[str, str]:
    """The descriptive columns with one value in every row (one dataset, one method...), said once above
    a table instead of in every row; none for a table of one row, which says everything in it."""
    if len(texts) < 2:
        return {}
    return {h: texts[0][i] for i, h in enumerate(headers)
            if h in ("dataset", "method", "remedy") and len({cells[i] for cells in texts}) == 1}


def _fitted(headers: list[str], texts: list[list[str]], order: list[str], fixed: int, title: str | None,
            console) -> Any:
    """A rich table of the columns ``order`` names, the rightmost of those after the first ``fixed`` dropped
    one by one until it fits ``console``'s width (the first ``fixed`` always stay)."""
    from rich import box
    from rich.measure import Measurement
    from rich.table import Table

    order = list(order)
    while True:
        table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
        for h in order:
            table.add_column(h, no_wrap=True, justify="left" if h in KEY_COLUMNS[:5] else "right")
        for cells in texts:
            by_header = dict(zip(headers, cells))
            table.add_row(*(by_header[h] for h in order))
        if len(order) <= fixed or Measurement.get(console, console.options.update_width(1_000_000), table).maximum <= console.width:
            return table
        order.pop()  # the rightmost of the optional columns


def paired_table(rows, console, show_all: bool = False) -> Any:
    """Each remedy row against the plain SAE, paired by seed (:func:`~collapse_tui.report.paired_cells`),
    for the terminal: a descriptive column with one value throughout said once in the title; the rows'
    labels, the pairs and the first metric (the dead %) always, the others while they fit ``console``
    (every one with ``show_all``)."""
    from collapse_tui.report import paired_cells

    headers, texts = paired_cells(rows)
    common = _common(headers, texts)
    order = [h for h in headers if h not in common]
    first = next((i for i, h in enumerate(order) if h.startswith("Δ ")), len(order) - 1)
    fixed = len(order) if show_all else first + 1
    title = "  ".join(f"{h}: {v}" for h, v in common.items()) or None
    return _fitted(headers, texts, order, fixed, title, console)
