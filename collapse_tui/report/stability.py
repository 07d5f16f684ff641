"""Feature survival across seeds: the baseline within-run survival is read against. Two SAEs trained alike
on the same data from different seeds learn partly different features (Paulo & Belrose 2025, "Sparse
autoencoders trained on the same data learn different features"), so "x% of the first mark's features
survive" means something only beside how many features two seeds of the row share at the end.

Per row with at least two runs that kept their decoder marks (``decoders.npz``): every pair of seeds'
final decoders is matched one-to-one (Hungarian matching on cosines, live neurons only, cosine >= 0.7,
:func:`~collapse_tui.metrics.stability.feature_survival`), and the shares are averaged over the pairs.
A run whose marks cannot be read is left out of its row's pairs and named in the section's note.

Only two SAEs that read the same inputs are matched: decoder directions live in the space of their
input, and two seeds' VAEs encode the images in two unrelated spaces, so matching across them would
measure nothing but chance (the study's seed sets the VAE's as well as the SAE's, so each seed of a row
has its own). Such a row's baseline reads "n/a", never 0; so does a row whose dictionaries have more live
neurons than survival is computed for (:data:`~collapse_tui.metrics.stability.SURVIVAL_MAX_LIVE`).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from collapse_tui.metrics import stability as matching
from collapse_tui.metrics.stability import FEATURE_MATCH_COSINE, SurvivalTooLarge, feature_survival
from collapse_tui.report.rows import Row
from collapse_tui.store import layout, read_decoders, read_summary

__all__ = ["SeedSurvival", "STABILITY_TITLE", "seed_survival", "stability_markdown_parts"]

STABILITY_TITLE = "Feature survival: against the first mark, and across seeds"


@dataclass(frozen=True)
class SeedSurvival:
    share: float | None  # mean over seed pairs of the share of live features matched; None without a pair
    pairs: int
    unreadable: tuple[str, ...]  # runs whose decoder marks could not be read (their reasons)
    other_inputs: int = 0  # pairs left out because the two SAEs read different inputs (two VAEs' codes)
    too_large: int = 0  # pairs left out because a side has more live neurons than survival is computed for


def input_of(run_dir) -> tuple | None:
    """What an SAE read, as far as its summary tells: the model whose activations it was trained on (the
    VAE's file, keyed by its config, data and seed), the layer and the data's fingerprint. None when the
    summary cannot be read, which then pairs with nothing."""
    try:
        summary = read_summary(run_dir)
    except ValueError:
        return None
    if not isinstance(summary, dict):
        return None
    data, model = summary.get("data"), summary.get("vae_model")
    fingerprint = data.get("fingerprint") if isinstance(data, dict) else None
    # The file's name holds the VAE's key (its config, data and seed); a run that reused a VAE in memory
    # recorded "memory" before it recorded the file, which says nothing about which one.
    key = layout.vae_model_key(model) if isinstance(model, str) else None
    if key is None:
        return None
    return key, str(summary.get("source")), str(fingerprint)


def seed_survival(row: Row) -> SeedSurvival:
    finals, unreadable = [], []
    for run_dir in row.run_dirs:
        try:
            marks = read_decoders(run_dir)
        except ValueError as exc:
            unreadable.append(str(exc))
            continue
        if marks is not None and marks.epochs.size:
            finals.append((marks.decoders[-1].astype(np.float32), marks.alive[-1], input_of(run_dir)))
    shares, other, too_large = [], 0, 0
    for (a, alive_a, input_a), (b, alive_b, input_b) in combinations(finals, 2):
        if input_a is None or input_a != input_b:
            other += 1
            continue
        try:
            shares.append(feature_survival(a, b, cosine=FEATURE_MATCH_COSINE, reference_alive=alive_a,
                                           later_alive=alive_b).share_matched)
        except SurvivalTooLarge:
            too_large += 1
    return SeedSurvival(float(np.mean(shares)) if shares else None, len(shares), tuple(unreadable), other,
                        too_large)


def _across_text(across: SeedSurvival) -> str:
    if across.share is not None:
        return f"{100 * across.share:.1f}"
    if across.too_large:
        return f"n/a (over {matching.SURVIVAL_MAX_LIVE:,} live neurons)"
    return "n/a (inputs differ)" if across.other_inputs else "–"


def stability_markdown_parts(rows: list[Row], label) -> tuple[list[str], list[list[str]], list[str]] | None:
    """(headers, cells, notes) of the section, or None when no row measured survival. ``label(row)``: the
    row's dataset / method / remedy / k-λ cells, as the other sections write them."""
    measured = [row for row in rows if any("survival" in f for f in row.finals)]
    if not measured:
        return None
    cells, notes, too_large = [], [], False
    for row in measured:
        within = row.stat("survival", 100.0)
        across = seed_survival(row)
        notes.extend(across.unreadable)
        # A run's own survival is None where its dictionary was too large to match (engine/stability.py).
        too_large |= bool(across.too_large) or any("survival" in f and f["survival"] is None for f in row.finals)
        cells.append([*label(row),
                      "–" if within is None else f"{within[0]:.1f} ± {within[1]:.1f}",
                      _across_text(across),
                      str(across.pairs)])
    notes.insert(0, "Survival: the share of live neurons whose decoder direction is matched one-to-one at cosine "
                    "≥ 0.7 (Hungarian matching). Against the first mark: within each run, the first evaluation "
                    "mark's live neurons found at the end (mean ± std over seeds). Across seeds: each pair of "
                    "seeds' final live dictionaries, mean over pairs; the baseline (Paulo & Belrose 2025): "
                    "features two seeds share at the end, which a run's survival is read against; only seeds whose "
                    "SAEs read the same inputs are matched (n/a: each seed's SAE read its own VAE's codes, two "
                    "unrelated spaces).")
    if too_large:
        notes.insert(1, f"Survival is not computed for a dictionary of more than {matching.SURVIVAL_MAX_LIVE:,} live "
                        "neurons "
                        "(its cosine matrix and Hungarian matching would take gigabytes and minutes): such runs "
                        "and seed pairs read \"–\" and \"n/a\", never 0.")
    return ["survival vs first %", "survival across seeds %", "seed pairs"], cells, notes
