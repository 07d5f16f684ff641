"""Tables of results in the README and the docs, written from the sweep directory a run of a preset
left (never copied by hand), each with the command, the date and the machine; and a check of such a
table against a fresh run, so that it cannot go stale (CI checks the README's against its own run).

    python docs/sweep_table.py SWEEP_DIR                        print the table
    python docs/sweep_table.py SWEEP_DIR --full                 every threshold, MSE, BCE, MIG, specialized
    python docs/sweep_table.py SWEEP_DIR --report               the sweep's own table: mean ± std over seeds
    python docs/sweep_table.py SWEEP_DIR --paired               each row against the plain SAE, paired by seed
    python docs/sweep_table.py SWEEP_DIR --write FILE [--block NAME]   replace the table between the markers
    python docs/sweep_table.py SWEEP_DIR --check FILE [--block NAME]   exit 1 naming each number that differs

A table sits between ``<!-- table:NAME:start -->`` and ``<!-- table:NAME:end -->`` (NAME: the sweep's
preset, unless --block says otherwise); the full table is written as it is, the short one is also
checked. The check allows a dead fraction within 1 point and wants L0 and EV equal in the digits shown: on one
machine the run is reproducible to the last digit, and a dead fraction is the first number to move when
another CPU rounds differently (another instruction set changes the float sums), since a neuron at the
edge of dying flips with it.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collapse_tui.config.presets import presets  # noqa: E402
from collapse_tui.config.vocabulary import sparsity_label  # noqa: E402
from collapse_tui.metrics.specs import DEAD, dead_spec, spec, threshold_key  # noqa: E402
from collapse_tui.store import load_sweep, sweep_records  # noqa: E402

COLUMNS = ("method", "k / λ", "dead %", "L0", "EV")
FULL = ("mse", "bce", "mig", "specialized")
DEAD_TOLERANCE = 1.0  # percentage points


def markers(name: str) -> tuple[str, str]:
    return f"<!-- table:{name}:start -->", f"<!-- table:{name}:end -->"


def records(sweep_dir: Path) -> list:
    found = sweep_records(sweep_dir)
    for record in found:
        if record.error:
            raise SystemExit(f"sweep_table: {record.error}")
    return found


def rows(sweep_dir: Path) -> list[list[str]]:
    """A row per run of the sweep, in the sweep's order: method, k or λ, then the numbers as the tool
    prints them."""
    out = []
    for record in records(sweep_dir):
        s, final = record.summary, record.summary.get("final") or {}
        out.append([s["method"], sparsity_label(s["method"], s["sparsity"]), DEAD.format(final.get(DEAD.key)),
                    spec("l0").format(final.get("l0")), spec("explained_variance").format(final.get("explained_variance"))])
    return out


def full_rows(sweep_dir: Path) -> tuple[list[str], list[list[str]]]:
    """The full table: every run with the dead fraction at each threshold and the other final metrics."""
    found = records(sweep_dir)
    thresholds = found[0].config.get("eval", {}).get("thresholds", [0.0])
    deads = [dead_spec(threshold_key(t)) for t in thresholds]
    header = ["run", "method", "k / λ", *(f"dead % @{t:g}" for t in thresholds), "L0", "EV",
              *(spec(k).label for k in FULL)]
    out = []
    for record in found:
        s, final = record.summary, record.summary.get("final") or {}
        out.append([s["name"], s["method"], sparsity_label(s["method"], s["sparsity"]),
                    *(d.format(d.value(s)) for d in deads), spec("l0").format(final.get("l0")),
                    spec("explained_variance").format(final.get("explained_variance")),
                    *(spec(k).format(final.get(k)) for k in FULL)])
    return header, out


def vae_line(sweep_dir: Path) -> str:
    vae = records(sweep_dir)[0].summary.get("vae") or {}
    return f"VAE alone: MIG {spec('mig').format(vae.get('mig'))}, BCE {spec('bce').format(vae.get('bce'))} nats per image."


def wall_time(sweep_dir: Path) -> str:
    """From the first run's start to the last run's end, as the summaries record them."""
    found = records(sweep_dir)
    starts = [r.summary.get("started") for r in found]
    ends = [r.summary.get("finished") for r in found]
    if None in starts or None in ends:
        return "wall time not recorded"
    seconds = max(ends) - min(starts)
    return f"{int(seconds // 60)} min {round(seconds % 60)} s wall time"


def machine(sweep_dir: Path) -> str:
    environment = (records(sweep_dir)[0].config.get("environment") or {})
    return (f"{environment.get('backend', '?')} on {environment.get('device', '?')}, {os.cpu_count()} cores, "
            f"{platform.machine()}")


def preset(sweep_dir: Path) -> str:
    """What ``collapse-tui --batch`` is given to run the sweep again: the shipped preset's file name when the
    sweep ran one (its ``name:`` may differ, as ``quick-shapes3d`` from ``quick_shapes3d.yaml``), else the
    config file's name where it is there and no preset has its name (run from its folder), else the sweep's
    name."""
    sweep = load_sweep(sweep_dir)
    if isinstance(sweep.config, str):
        shipped = presets().get(Path(sweep.config).stem)
        if shipped is not None and _parsed(shipped) == _parsed(Path(sweep.config)) is not None:
            return Path(sweep.config).stem
        if shipped is None and Path(sweep.config).is_file():  # a config of one's own, run from its folder
            return Path(sweep.config).name
    return sweep.name


def _parsed(path: Path):
    """A preset's settings, its comments aside (a header reworded since the run is still the same sweep);
    None when the file is gone or unreadable."""
    import yaml

    try:
        return yaml.safe_load(path.read_text())
    except (OSError, ValueError, yaml.YAMLError):
        return None


def report_rows(sweep_dir: Path) -> tuple[list[str], list[list[str]], list[str]]:
    """The sweep's own results table (as its results.md has it: a row per experiment, mean ± std over its
    seeds) and the notes that say how to read it."""
    from collapse_tui.report import build_rows, table_cells, table_notes

    rows_, _ = build_rows(records(sweep_dir))
    header, texts, _ = table_cells(rows_)
    return header, texts, table_notes(rows_)


PAIRED_HEADER = ["remedy", "setting", "dead % (mean ± sd)", "Δ dead % [95% CI], p", "EV", "Δ EV [95% CI]",
                 "ReLU-dead %", "dead slope /e-fold [95% CI]"]
# A sweep that compares methods at equal sparsity adds what each row is (its method), what it is against, and
# the L0 it reached beside Top-k's.
METHODS_HEADER = ["method", "remedy", "setting", "against", "dead % (mean ± sd)", "Δ dead % [95% CI], p",
                  "L0", "Δ L0 [95% CI]", "EV", "Δ EV [95% CI]", "ReLU-dead %", "dead slope /e-fold [95% CI]"]


def _interval(result) -> str:
    """A paired result as the compact table writes it: ``-28.8 [-35.0, -22.6], p < 0.001``."""
    if result.mean is None:
        return "–"
    spec = result.spec
    text = spec.signed(result.mean)
    if result.ci is not None:
        text += f" [{spec.text(result.ci[0], like=result.mean)}, {spec.text(result.ci[1], like=result.mean)}]"
        if result.p is not None and result.spec.key == DEAD.key:
            text += ", p < 0.001" if result.p < 0.001 else f", p = {result.p:.3f}"
    return text


def paired_rows(sweep_dir: Path) -> tuple[list[str], list[list[str]], list[str]]:
    """Every row of the sweep beside the plain row it is compared with (the sweep's "Against the plain SAE"
    section, with each row's own dead %, EV, ReLU-dead % and dead slope beside its differences): a line
    per row in the sweep's order, the plain rows marked as such. Where rows of other methods are compared
    with Top-k at equal sparsity, each line also says its method, what it is against and its L0."""
    from collapse_tui.report import across_methods, against_text, build_rows, comparisons, paired
    from collapse_tui.report.plateau import plateau_of

    rows_, _ = build_rows(records(sweep_dir))
    found = comparisons(rows_)
    against = {id(row): plain for row, plain in found}
    crossed = across_methods(found)
    # Rows of several methods say which each is and the L0 it reached, compared across methods or not.
    methods = crossed or len({row.method for row in rows_}) > 1
    metrics = (DEAD, spec("l0"), spec("explained_variance")) if methods else (DEAD, spec("explained_variance"))
    relu = spec("dead_relu")
    body = []
    for row in rows_:
        plain = against.get(id(row))
        if plain is not None:
            deltas = [_interval(paired(row, plain, metric)) for metric in metrics]
            versus = against_text(row, plain)
        elif row.remedy == "none":
            deltas, versus = ["(a plain row)"] * len(metrics), "–"
        else:
            deltas, versus = ["no plain row at its settings"] * len(metrics), "–"
        cells = []
        for metric, delta in zip(metrics, deltas):
            stat = row.stat(metric.key, metric.scale)
            cells += ["–" if stat is None else f"{metric.text(stat[0])} ± {metric.text(stat[1], like=stat[0])}", delta]
        share = row.stat(relu.key, relu.scale)
        setting = row.setting.replace("sae.remedies.", "").replace("sae.", "")  # the table is wide enough
        if methods:  # a method's k or λ says which row it is where the other settings do not
            setting = ", ".join(filter(None, (sparsity_label(row.method, row.sparsity), setting)))
        first = [row.method, row.remedy, setting, versus] if methods else [row.remedy, setting]
        body.append([*first, *cells, "–" if share is None else relu.text(share[0]), plateau_of(row).text()])
    notes = ["Δ: the row minus the plain row it is compared with (the same dataset, method, k / λ and other "
             "settings; a plain row with another k schedule: the sweep's first plain row), seed by seed, then "
             "averaged, with the mean's 95% t-interval and the two-sided paired t-test's p; percentages' "
             "differences are in points. Dead slope: percentage points per e-fold of updates over the last "
             "evaluation marks, mean over seeds and its 95% t-interval."]
    if crossed:
        from collapse_tui.report.tables import EQUAL_SPARSITY_NOTE

        notes.append(EQUAL_SPARSITY_NOTE)
    return METHODS_HEADER if methods else PAIRED_HEADER, body, notes


def only_columns(header: list[str], body: list[list[str]], notes: list[str], columns: list[str]):
    """The table cut to ``columns`` (by header, in that order) and the notes that explain one of them;
    SystemExit naming a column the table does not have."""
    missing = [c for c in columns if c not in header]
    if missing:
        raise SystemExit(f"sweep_table: no column {missing[0]!r}; the table has: {', '.join(header)}")
    keep = [header.index(c) for c in columns]

    def explains(note: str) -> bool:  # "dead % @t: ..." explains "dead % @0"
        head = note.split(":", 1)[0].split(" @")[0].split(" f<")[0]
        return any(c.startswith(head) for c in columns)

    return columns, [[row[i] for i in keep] for row in body], [n for n in notes if explains(n)]


def block(sweep_dir: Path, name: str, full: bool = False, report: bool = False, paired: bool = False,
          columns: list[str] | None = None) -> str:
    start, end = markers(name)
    notes: list[str] = []
    if paired:
        header, body, notes = paired_rows(sweep_dir)
    elif report:
        header, body, notes = report_rows(sweep_dir)
    else:
        header, body = full_rows(sweep_dir) if full else (list(COLUMNS), rows(sweep_dir))
    if columns:
        header, body, notes = only_columns(header, body, notes, columns)
    lines = [start, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in body]
    if notes:
        lines += [""] + [f"- {note}" for note in notes]
    if full:
        lines += ["", vae_line(sweep_dir)]
    lines += ["", f"`collapse-tui --batch {preset(sweep_dir)}`, {datetime.date.today():%Y-%m-%d}, "
                  f"{machine(sweep_dir)}, {wall_time(sweep_dir)} (the table is written by "
                  f"`python docs/sweep_table.py{_mode(full, report, paired)}"
                  f"{' --columns ...' if columns else ''}` from the "
                  "sweep's directory).", "", end]
    return "\n".join(lines)


def _mode(full: bool, report: bool, paired: bool) -> str:
    return " --full" if full else " --report" if report else " --paired" if paired else ""


def table_in(text: str, name: str) -> list[list[str]]:
    """The rows of the table between the markers called ``name`` in ``text``."""
    start, end = markers(name)
    match = re.search(re.escape(start) + "(.*?)" + re.escape(end), text, re.S)
    if not match:
        raise SystemExit(f"sweep_table: no {start} ... {end} block")
    lines = [line for line in match.group(1).splitlines() if line.startswith("| ") and "---" not in line]
    return [[cell.strip() for cell in line.strip("| ").split(" | ")] for line in lines[1:]]


def differences(shown: list[list[str]], measured: list[list[str]]) -> list[str]:
    if len(shown) != len(measured):
        return [f"the table has {len(shown)} rows, the run {len(measured)}"]
    problems = []
    for old, new in zip(shown, measured):
        what = f"{new[0]} {new[1]}"
        if old[:2] != new[:2]:
            problems.append(f"row {old[:2]} is {new[:2]} in the run")
            continue
        try:
            moved = abs(float(old[2]) - float(new[2]))
        except ValueError:
            moved = float("inf")
        if moved > DEAD_TOLERANCE:
            problems.append(f"{what}: dead % {old[2]} in the table, {new[2]} in the run")
        for column, a, b in zip(COLUMNS[3:], old[3:], new[3:]):
            if a != b:
                problems.append(f"{what}: {column} {a} in the table, {b} in the run")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path, help="the sweep directory a run of a preset wrote")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--full", action="store_true", help="every run: every threshold and final metric")
    kind.add_argument("--report", action="store_true", help="the sweep's own table, mean ± std over seeds")
    kind.add_argument("--paired", action="store_true",
                      help="each row against the plain SAE, paired by seed, with its dead slope")
    parser.add_argument("--block", metavar="NAME", help="the markers' name (default: the sweep's preset)")
    parser.add_argument("--columns", metavar="A,B,...", help="only these columns (by header), in this order")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", metavar="FILE", type=Path, help="replace the table between the markers")
    mode.add_argument("--check", metavar="FILE", type=Path, help="compare the (short) table with the run")
    args = parser.parse_args()
    name = args.block or preset(args.sweep_dir)
    if args.check:
        problems = differences(table_in(args.check.read_text(), name), rows(args.sweep_dir))
        for problem in problems:
            print(f"sweep_table: {args.check}: {problem}", file=sys.stderr)
        if problems:
            print(f"sweep_table: to take the run's numbers: python docs/sweep_table.py {args.sweep_dir} "
                  f"--write {args.check}", file=sys.stderr)
            return 1
        print(f"sweep_table: {args.check} matches the run in {args.sweep_dir}")
        return 0
    columns = [c.strip() for c in args.columns.split(",")] if args.columns else None
    text = block(args.sweep_dir, name, args.full, args.report, args.paired, columns)
    if args.write:
        old = args.write.read_text()
        table_in(old, name)  # the markers must be there
        start, end = markers(name)
        args.write.write_text(old[: old.index(start)] + text + old[old.index(end) + len(end):])
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
