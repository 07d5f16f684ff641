"""The rows written out: Markdown and CSV tables with their notes, each remedy row against the plain SAE
(:mod:`~collapse_tui.report.paired`) as a section of the Markdown and a CSV of its own, a run's line of
``runs.jsonl``, and a sweep directory's results files."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Iterable

from collapse_tui.config import sparsity_label
from collapse_tui.metrics.specs import (
    DEAD,
    MISSING,
    NOT_APPLICABLE,
    MetricSpec,
    csv_number,
    dead_keys,
    dead_spec,
    is_frequency_key,
    is_threshold_key,
    spec,
)
from collapse_tui.report.paired import (
    ALPHA,
    CONFIDENCE,
    MAX_SEEDS,
    POWER,
    Paired,
    across_methods,
    comparisons,
    detectable_effect,
    paired,
    pooled_row_sd,
    pooled_sd,
    seeds_needed,
)
from collapse_tui.report.paper import PAPER_FINAL_K, PAPER_SOURCE
from collapse_tui.report.stability import STABILITY_TITLE, stability_markdown_parts
from collapse_tui.report.plateau import (
    PLATEAU_TITLE,
    has_plateau,
    plateau_cells,
    plateau_csv_cells,
    plateau_csv_header,
    plateau_notes,
    plateau_section_notes,
)
from collapse_tui.report.rows import TABLE_METRICS, Row, build_rows, experiment_settings
from collapse_tui.store import RunRecord, load_sweep, write_atomic
from collapse_tui.store.layout import PAIRED_CSV, RESULTS_CSV, RESULTS_MD


def _dead_specs(rows: list[Row]) -> list[MetricSpec]:
    """The dead@ columns measured, in the order of the first run that has them."""
    return [dead_spec(k) for k in dead_keys(f for row in rows for f in row.finals)]


def _fmt(spec: MetricSpec, stat: tuple[float, float] | None, n: int) -> str:
    """Mean ± std over the seeds (the mean alone for one seed), as the spec shows a value."""
    if stat is None or not math.isfinite(stat[0]):
        return MISSING
    mean, std = stat
    return f"{spec.text(mean)} ± {spec.text(std, like=mean)}" if n > 1 else spec.text(mean)


def _sparsity(row: Row) -> str:
    return sparsity_label(row.method, row.sparsity)


# The factor metrics a table keeps even when no run could measure them (activations without factors), so
# that it says n/a where a reader looks for them rather than leave them out.
HEADLINE_FACTOR_METRICS = ("mig", "probe_acc", "auroc_best")


def _measured(rows: list[Row]) -> list[MetricSpec]:
    """The metrics some run of ``rows`` has: a sweep without extended epochs or schedules should not
    carry columns of dashes for them (the headline factor metrics stay, n/a, for runs without factors)."""
    return [m for m in TABLE_METRICS if any(m.key in final for row in rows for final in row.finals)
            or (m.key in HEADLINE_FACTOR_METRICS and any(m.not_applicable(row.finals) for row in rows))]


def _labelled(rows: list[Row]) -> bool:
    """Whether the table needs its setting column: some rows differ in more than the other columns show."""
    return any(row.setting for row in rows)


def _cites_paper(rows: list[Row]) -> bool:
    """Whether the table has the paper's columns: only when some row has the paper's number beside it."""
    return any(row.paper_dead is not None for row in rows)


def table_columns(rows: list[Row]) -> list[str]:
    return ["dataset", "method", "remedy", "k / λ", *(["setting"] if _labelled(rows) else []), "seeds",
            *(m.label for m in _dead_specs(rows)), *(m.label for m in _measured(rows)),
            *([f"paper {DEAD.label}", "paper spec."] if _cites_paper(rows) else [])]


def table_cells(rows: list[Row]) -> tuple[list[str], list[list[str]], list[list[Any]]]:
    """The table's columns (:func:`table_columns`) and, per row, its cells as text and as values to sort
    by (a metric's mean over the seeds, None where not measured; the text itself elsewhere, k / λ as a
    number)."""
    columns = table_columns(rows)
    shown = _dead_specs(rows) + _measured(rows)
    labelled, cites = _labelled(rows), _cites_paper(rows)
    texts, values = [], []
    for row in rows:
        n = len(row.finals)
        cells = [row.dataset, row.method, row.remedy, _sparsity(row)]
        keys: list[Any] = [row.dataset, row.method, row.remedy, row.sparsity]
        if labelled:
            cells.append(row.setting)
            keys.append(row.setting)
        cells.append(str(n))
        keys.append(n)
        for m in shown:
            stat = row.stat(m.key, m.scale)
            cells.append(NOT_APPLICABLE if stat is None and m.not_applicable(row.finals) else _fmt(m, stat, n))
            keys.append(stat[0] if stat else None)
        if cites:
            paper = row.paper_dead
            cells.append(f"{paper[0]:.1f} ± {paper[1]:.1f}" if paper else "")
            cells.append(str(row.paper_specialized) if row.paper_specialized is not None else "")
            keys += [paper[0] if paper else None, row.paper_specialized]
        texts.append(cells)
        values.append(keys)
    return columns, texts, values


def markdown_table(rows: list[Row]) -> str:
    """The table as GitHub Markdown, mean ± std over seeds; metrics no run measured are left out, the
    setting column too when no two rows differ in a setting the other columns do not show, and the
    paper's columns when no row corresponds to the paper's experiment."""
    columns, texts, _ = table_cells(rows)
    return _markdown(columns, texts)


def _markdown(columns: list[str], texts: list[list[str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for cells in texts:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def csv_table(rows: list[Row]) -> str:
    """The table as CSV: the rows of the Markdown table (``setting`` always there, empty where no label
    is needed), a mean and a std column per metric, the dead slope's interval over the seeds and the
    plateau verdict (:mod:`~collapse_tui.report.plateau`), run ids last."""
    metrics = _dead_specs(rows) + list(TABLE_METRICS)
    header = ["dataset", "method", "remedy", "sparsity", "setting", "n_seeds", "seeds"]
    for m in metrics:
        header += [f"{m.csv_name}_mean", f"{m.csv_name}_std"]
    header += plateau_csv_header()
    header += ["paper_dead_pct_mean", "paper_dead_pct_std", "paper_specialized", "runs"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        line: list[Any] = [row.dataset, row.method, row.remedy, f"{row.sparsity:g}", row.setting,
                           len(row.finals), " ".join(map(str, row.seeds))]
        for m in metrics:
            stat = row.stat(m.key, m.scale)
            line += [csv_number(v) for v in (stat or (None, None))]
        line += plateau_csv_cells(row)
        paper = row.paper_dead
        line += [paper[0], paper[1]] if paper else ["", ""]
        line += [row.paper_specialized if row.paper_specialized is not None else "", " ".join(row.run_ids)]
        writer.writerow(line)
    return out.getvalue()


_SPECIALIZED = ("A specialized neuron (our definition) is a live neuron whose normalised MI with one factor is ≥ τ "
                "and at least twice that with any other factor.")


def table_notes(rows: list[Row]) -> list[str]:
    """The notes of the columns the table has, and of no other."""
    if not rows:
        return []
    keys = {m.key for m in _dead_specs(rows) + _measured(rows)}
    notes = []
    if any(is_threshold_key(k) for k in keys):
        notes.append("dead % @t: neurons whose activation never exceeds t on the evaluation set; "
                     "mean ± std over seeds.")
    else:
        notes.append("mean ± std over seeds.")
    if any(is_frequency_key(k) for k in keys):
        notes.append("dead % f<f: neurons firing on fewer than a fraction f of the evaluation inputs.")
    if _labelled(rows):
        notes.append("setting: what else these rows' runs were set to, where rows of one dataset, method and "
                     "remedy differ (config.yaml's keys; data: the images' fingerprint). A row holds only runs "
                     "identical but for their seed.")
    paper = [row for row in rows if row.paper_dead is not None]
    if "dead_before_extension" in keys:
        notes.append("dead % sched. end: dead at the end of the schedule, before the extended epochs (the other "
                     "dead % columns are after them).")
    notes += plateau_notes(keys)  # Δdead last 20%, dead slope /e-fold and the plateau verdict
    if "specialized_before_sparsification" in keys:
        notes.append("spec. dense: specialized neurons after the first epoch, before the schedule sparsified "
                     "the SAE (only for runs with a schedule).")
    if "specialized" in keys or paper:
        notes.append(f"spec.: specialized neurons at the end. {_SPECIALIZED}")
    if "revived" in keys:
        notes.append("revived: neurons dead before the extended epochs that fire afterwards on at least "
                     "eval.revival_frequency (1e-3 by default) of the evaluation inputs.")
    if "newly_dead" in keys:
        notes.append("newly dead: neurons alive before the extended epochs and dead after them.")
    if "updates" in keys:
        notes.append("updates: the SAE's optimiser updates in all.")
    if paper:
        where = []
        if any(row.method == "topk" for row in paper):
            where.append(f"Top-k at k = {PAPER_FINAL_K}")
        if any(row.method == "l1" for row in paper):
            where.append(f"L1 beside the λ whose mean L0 is closest to {PAPER_FINAL_K}")
        notes.append(f"paper: {PAPER_SOURCE}; {' and '.join(where)}, without remedies; the paper does not say "
                     "which method its specialized-neuron counts come from.")
    return notes


def report_markdown(rows: list[Row], left_out: list[RunRecord], title: str) -> str:
    """The table with the notes a reader needs to read it (:func:`table_notes`), the runs left out, each row's
    plateau verdict and dead % against updates (:func:`plateau_markdown`), then each remedy row against the
    plain SAE (:func:`paired_markdown`)."""
    parts = [f"# {title}\n", markdown_table(rows) if rows else "No run has finished yet.\n"]
    notes = table_notes(rows)
    if notes:
        parts.append("\n" + "\n".join(f"- {n}" for n in notes) + "\n")
    if left_out:
        parts.append("\nNot in the table (not finished ok, or flagged as no result): "
                     + ", ".join(f"{r.run_id} ({'; '.join([r.status, *r.flags])})" for r in left_out) + "\n")
    parts.append(plateau_markdown(rows))
    parts.append(stability_markdown(rows))
    parts.append(paired_markdown(rows))
    return "".join(parts)


def stability_markdown(rows: list[Row]) -> str:
    """The section on feature survival (:mod:`~collapse_tui.report.stability`); empty when no run
    measured it."""
    labelled = _labelled(rows)

    def label(row: Row) -> list[str]:
        return [row.dataset, row.method, row.remedy, _sparsity(row), *([row.setting] if labelled else [])]

    parts = stability_markdown_parts(rows, label)
    if parts is None:
        return ""
    headers, texts, notes = parts
    headers = ["dataset", "method", "remedy", "k / λ", *(["setting"] if labelled else []), *headers]
    return (f"\n## {STABILITY_TITLE}\n\n" + _markdown(headers, texts) + "\n"
            + "".join(f"- {n}\n" for n in notes))


def plateau_markdown(rows: list[Row]) -> str:
    """The section "Plateau: dead % against updates" (:func:`~collapse_tui.report.plateau.plateau_cells`
    and its note); empty when no run measured a dead slope or recorded a curve."""
    if not has_plateau(rows):
        return ""
    headers, texts = plateau_cells(rows)
    return (f"\n## {PLATEAU_TITLE}\n\n" + _markdown(headers, texts) + "\n"
            + "".join(f"- {n}\n" for n in plateau_section_notes()))


# ------------------------------------------------------------------------------ against the plain SAE

PAIRED_TITLE = "Against the plain SAE (paired by seed)"
# The headline metrics, what a view with room for few shows (this section, the TUI's runs table): the dead
# fraction the study is about, and what a change to it costs or buys (sparsity, reconstruction,
# disentanglement). The section shows those measured; paired.csv holds every metric the table has.
HEADLINE_KEYS = ("dead_fraction", "l0", "explained_variance", "mig")
DEAD_EFFECT = 5.0  # percentage points of dead %: the effect the section's note says how many seeds need

# A remedy row, the plain row it is compared with (None: none at its settings), and a result per metric.
Compared = tuple[Row, Row | None, list[Paired]]


def _has(rows: list[Row], key: str) -> bool:
    return any(key in final for row in rows for final in row.finals)


def _paired_specs(rows: list[Row]) -> list[MetricSpec]:
    return [spec(key) for key in HEADLINE_KEYS if _has(rows, key)]


def _csv_paired_specs(rows: list[Row]) -> list[MetricSpec]:
    return ([DEAD] if _has(rows, DEAD.key) else []) + _measured(rows)


def _compared(rows: list[Row], specs: list[MetricSpec]) -> list[Compared]:
    return [(row, plain, [paired(row, plain, m) for m in specs] if plain else []) for row, plain in comparisons(rows)]


def _p_text(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def paired_text(result: Paired) -> str:
    """A result as a cell shows it: the mean difference, signed, to the metric's digits, then its interval
    and p (``+3.2 [0.4, 6.0] p=0.041``); the difference alone for one pair; "–" for none."""
    if result.mean is None:
        return MISSING
    text = result.spec.signed(result.mean)
    if result.ci is not None and result.p is not None:
        low, high = (result.spec.text(v, like=result.mean) for v in result.ci)
        text += f" [{low}, {high}] {_p_text(result.p)}"
    return text


def _pairs_text(row: Row, plain: Row) -> str:
    """The seeds both rows ran, and how many only one of them ran (not compared)."""
    shared, alone = set(row.seeds) & set(plain.seeds), set(row.seeds) ^ set(plain.seeds)
    return f"{len(shared)}" + (f" ({len(alone)} left out)" if alone else "")


def _cells(compared: list[Compared], specs: list[MetricSpec]) -> tuple[list[str], list[list[str]]]:
    found = [(row, plain, results) for row, plain, results in compared if plain is not None]
    labelled = any(row.setting for row, _, _ in found)
    crossed = across_methods((row, plain) for row, plain, _ in found)  # then say what each row is against
    headers = ["dataset", "method", "remedy", "k / λ", *(["setting"] if labelled else []),
               *(["against"] if crossed else []), "pairs", *(f"Δ {m.label}" for m in specs)]
    texts = [[row.dataset, row.method, row.remedy, _sparsity(row), *([row.setting] if labelled else []),
              *([against_text(row, plain)] if crossed else []), _pairs_text(row, plain),
              *map(paired_text, results)] for row, plain, results in found if plain]
    return headers, texts


def against_text(row: Row, plain: Row) -> str:
    """What a row is compared with, as the "against" column names it: "plain" for the plain row of its own
    method, "topk k=50" for Top-k at the row's target L0 (:func:`~collapse_tui.report.paired.
    sparsity_baseline_of`)."""
    return "plain" if plain.method == row.method else f"{plain.method} k={plain.sparsity:g}"


def paired_cells(rows: list[Row]) -> tuple[list[str], list[list[str]]]:
    """The section's table: a line per remedy row that has a plain row (:func:`~collapse_tui.report.paired.
    baseline_of`), with the seeds paired and, per metric of :data:`HEADLINE_KEYS` measured, the mean
    difference remedy − plain, its t-interval and p (:func:`paired_text`)."""
    specs = _paired_specs(rows)
    return _cells(_compared(rows, specs), specs)


def _no_plain(compared: list[Compared]) -> list[str]:
    return [f"{row.dataset} {row.method} {row.remedy} {_sparsity(row)}" + (f" ({row.setting})" if row.setting else "")
            + ": no plain run at the same settings" for row, plain, _ in compared if plain is None]


def _seeds_note(compared: list[Compared]) -> str:
    """How many seeds a :data:`DEAD_EFFECT`-point effect on the dead % needs at the spread these
    comparisons measured (:func:`~collapse_tui.report.paired.seeds_needed` on the pooled sd of the
    differences), and what the fewest pairs here can find."""
    dead = [r for _, plain, results in compared if plain for r in results if r.spec.key == DEAD.key]
    effect = f"a {DEAD_EFFECT:g}-point effect on the dead %"
    pooled = pooled_sd(dead)
    if pooled is None:
        return (f"seeds: how many seeds {effect} needs is read from the spread of the paired differences, which "
                "needs at least 2 pairs in some comparison.")
    sd, dof = pooled
    text = f"seeds: the paired differences of dead % have an sd of {sd:.1f} pp (pooled, {dof} degrees of freedom"
    text += ", too few for the sd itself to be sure)" if dof < 10 else ")"
    plains = list({id(plain): plain for _, plain, _ in compared if plain}.values())
    own = pooled_row_sd(plains, DEAD)
    if own is not None:
        text += f"; the plain rows' dead % alone varies by {own[0]:.1f} pp from seed to seed"
    needed = seeds_needed(sd, DEAD_EFFECT)
    need = f"{needed} pairs" if needed is not None else f"more than {MAX_SEEDS} pairs"
    fewest = min(r.n for r in dead if r.n >= 2)
    found = detectable_effect(sd, fewest)
    return (f"{text}. At that spread {effect} needs {need} to be found with {POWER:.0%} power (two-sided paired t, "
            f"α = {ALPHA:g}); {fewest} pairs find {found:.1f} points with that power.")


EQUAL_SPARSITY_NOTE = (
    "against: a row of another method with no plain row of its own is compared at equal sparsity with plain "
    "Top-k at its target L0 (a k-sparse method's k, an L1 or JumpReLU row's controller target; the same "
    "data, seeds, dictionary, batch and length, each method by its own recipe: schedule, input scaling, "
    "Adam's β1 and the remedies its remedy column names); Δ L0 says how close it came to that L0.")


def _paired_notes(compared: list[Compared], specs: list[MetricSpec]) -> list[str]:
    if not any(plain for _, plain, _ in compared):
        return []
    notes = [f"Δ: the remedy row minus its plain row (remedy none; the same dataset, method, k / λ and other "
             f"settings; a plain row with another k / λ schedule: the first plain row, which differs in its schedule "
             f"alone), seed by seed over the seeds both rows ran, then averaged (a percentage's difference is "
             f"in percentage points); beside it the mean's {CONFIDENCE:.0%} t-interval and the p of a two-sided "
             "paired t-test of no difference (n − 1 degrees of freedom; for one pair the difference alone). "
             "pairs: the seeds both rows ran; left out: seeds only one of them ran."]
    if across_methods((row, plain) for row, plain, _ in compared):
        notes.append(EQUAL_SPARSITY_NOTE)
    if any(m.key == DEAD.key for m in specs):
        notes.append(_seeds_note(compared))
    return notes


def paired_notes(rows: list[Row]) -> list[str]:
    """The section's notes: what is tested and, from the spread measured, how many seeds an effect needs."""
    specs = _paired_specs(rows)
    return _paired_notes(_compared(rows, specs), specs)


def paired_markdown(rows: list[Row]) -> str:
    """The section "Against the plain SAE (paired by seed)": :func:`paired_cells` as a table, a line per
    remedy row that has no plain row to be compared with, and :func:`paired_notes`; empty without remedy
    rows."""
    specs = _paired_specs(rows)
    compared = _compared(rows, specs)
    if not compared:
        return ""
    headers, texts = _cells(compared, specs)
    parts = [f"\n## {PAIRED_TITLE}\n"]
    if texts:
        parts.append("\n" + _markdown(headers, texts))
    missing = _no_plain(compared)
    if missing:
        parts.append("\n" + "".join(f"- {line}\n" for line in missing))
    notes = _paired_notes(compared, specs)
    if notes:
        parts.append("\n" + "".join(f"- {n}\n" for n in notes))
    return "".join(parts)


PAIRED_CSV_HEADER = ["dataset", "method", "remedy", "sparsity", "setting", "against", "metric", "n", "left_out",
                     "mean_diff", "ci_low", "ci_high", "p"]


def paired_csv(rows: list[Row]) -> str:
    """The comparisons as CSV: a line per remedy row that has a plain row and metric either of them
    measured (the dead % and every column of the table, by their CSV names), what it is compared with
    (``against``: :func:`against_text`), the mean difference in the
    metric's shown scale, its interval and p (empty where there is none); ``n``: the seeds paired,
    ``left_out``: the seeds only one row measured."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(PAIRED_CSV_HEADER)
    for row, plain, results in _compared(rows, _csv_paired_specs(rows)):
        for r in results:
            if r.n == 0 and not r.left_out:
                continue  # neither row measured it
            low, high = r.ci or (None, None)
            writer.writerow([row.dataset, row.method, row.remedy, f"{row.sparsity:g}", row.setting,
                             against_text(row, plain), r.spec.csv_name,
                             r.n, len(r.left_out), *map(csv_number, (r.mean, low, high, r.p))])
    return out.getvalue()


def has_comparisons(rows: list[Row]) -> bool:
    """Whether some remedy row has a plain row to be compared with (what --table adds a section for)."""
    return any(plain is not None for _, plain in comparisons(rows))


def run_line(record: RunRecord) -> dict[str, Any]:
    """One finished run as a line of ``runs.jsonl``: its directory's name, status and flags, seed and the
    k / λ in effect, the settings that define its experiment (:func:`experiment_settings`, the row it
    belongs to) and its final metrics."""
    summary = record.summary
    return {"run": record.run_id, "status": record.status, "flags": list(record.flags),
            "seed": record.config.get("seed"), "sparsity": summary.get("sparsity"),
            "settings": experiment_settings(record), "final": dict(summary.get("final") or {})}


def write_report(directory: str | Path, records: Iterable[RunRecord], title: str) -> tuple[Path, Path, Path]:
    """Write results.md, results.csv and paired.csv (its header alone when no remedy row has a plain row,
    so that a file of an earlier table never stands for this one) into ``directory``; returns their paths."""
    directory = Path(directory)
    rows, left_out = build_rows(records)
    md, csv_path, paired_path = directory / RESULTS_MD, directory / RESULTS_CSV, directory / PAIRED_CSV
    write_atomic(md, report_markdown(rows, left_out, title))
    write_atomic(csv_path, csv_table(rows))
    write_atomic(paired_path, paired_csv(rows))
    return md, csv_path, paired_path


def sweep_title(path: str | Path) -> str:
    """The heading of a sweep's table: its name as recorded, so that --table writes the same file again."""
    try:
        name = load_sweep(path).name
    except ValueError:
        name = Path(path).name
    return table_title(name)


def table_title(name: str) -> str:
    return f"{name}: results"
