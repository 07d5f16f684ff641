"""The one vocabulary of metrics: what each final value of a run is called, in which unit, at what scale
and to how many digits it is shown. The batch console, the sweep tables, the runs table and the compare
screen all render from :data:`SPECS`, so that a number reads the same wherever it appears and adding a
metric is one entry here.

Which metrics a view shows is the view's choice (a narrow table picks a few); how each one looks is not.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

MISSING = "–"  # the cell of a value never measured
NOT_APPLICABLE = "n/a"  # the cell of a value that cannot be measured for the run (a factor metric, no factors)
# The final evaluation's number of ground-truth factors: 0 for activations read from a file without factors,
# whose factor metrics are then n/a, not missing (nor 0).
N_FACTORS = "n_factors"
DEAD_PREFIX = "dead@"
# Logged after every SAE epoch (cheap: from the training step's idle counts, no evaluation pass): the
# fraction of neurons that fired on no training input during the whole epoch.
DEAD_IN_TRAINING = "dead_in_training"
RARE_PREFIX = "dead_freq@"
# The final evaluation's dead fraction against training, [[updates, dead fraction], ...] at every evaluation
# mark (metrics/plateau.py): the one list summary.json's final section keeps beside the numbers.
DEAD_CURVE = "dead_curve"


def threshold_key(threshold: float) -> str:
    """``dead@0``, ``dead@1e-06``...: stable metric names for each dead-neuron threshold."""
    return f"{DEAD_PREFIX}{threshold:g}"


def is_threshold_key(key: str) -> bool:
    return key.startswith(DEAD_PREFIX)


def frequency_key(max_frequency: float) -> str:
    """``dead_freq@0.0001``...: the fraction of neurons firing on fewer than ``max_frequency`` of the
    evaluation inputs (dead by firing frequency)."""
    return f"{RARE_PREFIX}{max_frequency:g}"


def is_frequency_key(key: str) -> bool:
    return key.startswith(RARE_PREFIX)


@dataclass(frozen=True)
class MetricSpec:
    """How one metric is named and shown.

    ``key`` names it in a run summary's ``final`` dict (and in evaluation events); ``path`` says where
    else a summary keeps it when not there. ``value * scale`` is what is shown, to ``digits`` decimals:
    fractions of neurons read as percentages. ``methods`` lists the sparsity methods the metric means
    something for; empty means every method. ``description`` says in one line what the metric measures,
    for the metric glossary (docs/reference/metrics.md) that is generated from these specs.
    """

    key: str
    label: str  # the short column title
    unit: str = ""
    scale: float = 1.0
    digits: int = 3
    methods: frozenset[str] = frozenset()
    csv: str = ""  # the CSV column's name when it is not the key (a scaled value must not keep a fraction's name)
    path: tuple[str, ...] = ()  # keys into a run summary; default ("final", key)
    needs_factors: bool = False  # measured against ground-truth factors (or a VAE): n/a for a run without
    # Prose for the docs only: left out of equality, so two specs that show a number alike stay equal.
    description: str = field(default="", compare=False)

    @property
    def csv_name(self) -> str:
        return self.csv or self.key

    @property
    def summary_path(self) -> tuple[str, ...]:
        return self.path or ("final", self.key)

    @property
    def in_final(self) -> bool:
        return self.summary_path == ("final", self.key)

    @property
    def unit_on_value(self) -> bool:
        """Cells carry the unit only where the label does not name it: a number is never without its
        unit, and never shows it twice ("dead %" over 22.4; "time" over 12s)."""
        return bool(self.unit) and self.unit not in self.label.split()

    def applies_to(self, method: str | None) -> bool:
        return not self.methods or method in self.methods

    def value(self, summary: Mapping[str, Any]) -> float | int | None:
        """The metric in a run summary (as summary.json holds it); None where it is absent or not a number."""
        node: Any = summary
        for part in self.summary_path:
            if not isinstance(node, Mapping):
                return None
            node = node.get(part)
        return node if _is_number(node) else None

    def not_applicable(self, finals: Iterable[Mapping[str, Any]]) -> bool:
        """Whether the metric cannot be measured for runs with these final dicts: it needs factors, and every
        one of them was evaluated without (``n_factors`` 0)."""
        finals = list(finals)
        return self.needs_factors and bool(finals) and all(
            isinstance(f, Mapping) and f.get(N_FACTORS) == 0 for f in finals)

    def shown(self, summary: Mapping[str, Any]) -> str:
        """The metric of a run summary as a cell shows it: :meth:`format` of its value, or "n/a" where
        :meth:`not_applicable`."""
        value = self.value(summary)
        final = summary.get("final") if isinstance(summary, Mapping) else None
        if value is None and isinstance(final, Mapping) and self.not_applicable([final]):
            return NOT_APPLICABLE
        return self.format(value)

    def scaled(self, value: Any) -> float | None:
        return float(value) * self.scale if _is_number(value) else None

    def text(self, shown: float, like: float | None = None) -> str:
        """A number already scaled, to the spec's digits, without its unit. A small unitless number that
        the fixed digits would show as zero (an MSE of 3e-6 as ``0.00000``) is written in scientific
        notation instead; ``like``: decide the notation by this number (a std written the way its mean
        is)."""
        if self.scientific(shown if like is None else like):
            return f"{shown:.2e}"
        return f"{shown:.{self.digits}f}"

    def signed(self, shown: float) -> str:
        """:meth:`text` with its sign always written (a difference: ``+3.2``, ``-1.20e-05``)."""
        text = self.text(shown)
        return text if text.startswith("-") else "+" + text

    def scientific(self, shown: float) -> bool:
        """Whether ``shown`` is written in scientific notation (see :meth:`text`): a number that is not
        zero but would read as zero, in a measure without a unit shown to three or more decimals (where a
        tiny value is a value, not a rounding of zero: a dead percentage of 0.001 is no neuron here)."""
        return (not self.unit and self.digits >= 3 and math.isfinite(shown)
                and 0 < abs(shown) < 0.5 * 10.0 ** -self.digits)

    def format(self, value: Any, unit: bool = False) -> str:
        """A raw value as a cell shows it (None: "–"). ``unit=True`` puts the unit after the number
        whatever the label says, for running text ("dead 22.4%")."""
        if value is None:
            return MISSING
        if not _is_number(value):
            return str(value)  # a summary written by hand or by another version: show it, never fail
        text = self.text(float(value) * self.scale)
        return text + self.unit if unit or self.unit_on_value else text


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def csv_number(shown: float | None) -> str:
    """A (scaled) number as the CSV files hold it: six significant digits, empty when never measured."""
    return "" if shown is None else f"{shown:.6g}"


# The dead fraction at the first threshold; every dead@<t> is the same spec at another threshold.
DEAD = MetricSpec("dead_fraction", "dead %", unit="%", scale=100.0, digits=1, csv="dead_pct",
                  description="Fraction of neurons whose activation never exceeds the first of eval.thresholds on "
                              "the evaluation set (after the extended epochs, if any).")

# In the order the exhaustive views (sweep tables, compare) show them.
SPECS: tuple[MetricSpec, ...] = (
    DEAD,
    # Runs with extended epochs: dead at the end of the schedule, before the extension (DEAD is after it).
    MetricSpec("dead_before_extension", "dead % sched. end", unit="%", scale=100.0, digits=1,
               csv="dead_pct_schedule_end",
               description="The dead fraction at the end of the schedule, before the extended epochs (runs with "
                           "extended epochs only)."),
    # Has the dead fraction stopped changing? (metrics/plateau.py) The change over the last 20% of the
    # updates, kept, and the slope against ln(updates) over the second half, which the report reads over seeds.
    MetricSpec("dead_change_last_20pct", "Δdead last 20%", unit="pp", scale=100.0, digits=1,
               csv="dead_change_pp_last_20pct",
               description="How far the dead fraction moved since the latest evaluation at the final sparsity at "
                           "or before 80% of the updates (– when no such evaluation exists). One difference of two "
                           "noisy evaluations, and a dead fraction growing with ln(updates) moves ln(1.25) ≈ 0.22 "
                           "× its slope per e-fold here at any run length: it cannot tell a plateau from slow "
                           "growth (see dead slope /e-fold)."),
    MetricSpec("dead_slope_per_efold", "dead slope /e-fold", unit="pp", scale=100.0, digits=1,
               csv="dead_slope_pp_per_efold",
               description="Least-squares slope of the dead fraction against ln(updates), in percentage points "
                           "per e-fold (× 2.72) of the updates, over the evaluations at the final sparsity at or "
                           "after half the run's updates (at least 3; – otherwise). results.md calls a row a "
                           "plateau when the 95% t-interval of this slope over its seeds lies within ±1 pp per e-fold."),
    MetricSpec("dead_slope_marks", "slope marks", digits=0,
               description="The evaluations dead slope /e-fold was fitted to: those at the final sparsity at or "
                           "after half the updates (the slope needs at least 3)."),
    # Why the dead are dead (final evaluation): never a positive pre-activation, or never through the gate.
    MetricSpec("dead_relu", "ReLU-dead %", unit="%", scale=100.0, digits=1, csv="dead_relu_pct",
               description="Fraction of neurons dead because their pre-activation is never positive on the "
                           "evaluation set: no gradient reaches them through the ReLU, and AuxK cannot pick them."),
    MetricSpec("dead_gated", "gated-dead %", unit="%", scale=100.0, digits=1, csv="dead_gated_pct",
               description="Fraction of neurons dead although their pre-activation is sometimes positive: never among "
                           "Top-k's k largest, or never above BatchTopK's or JumpReLU's threshold."),
    # What the SAE's input offers (the same at every evaluation of a run).
    MetricSpec("input_participation_ratio", "input PR", digits=1,
               description="Participation ratio (Σλ)²/Σλ² of the SAE input's covariance eigenvalues: how many "
                           "directions the input uses."),
    MetricSpec("input_dims_99", "input dims 99%", digits=0,
               description="Leading principal directions of the SAE's input that hold 99% of its variance."),
    MetricSpec("input_silent_units", "input silent", digits=0,
               description="Units of the SAE's input constant over the evaluation set (for a ReLU layer: never "
                           "firing)."),
    MetricSpec("l0", "L0", digits=1, description="Mean number of active neurons per input."),
    MetricSpec("explained_variance", "EV", digits=3,
               description="Explained variance (1 − FVU) of the SAE's reconstruction of its input."),
    MetricSpec("mse", "MSE", digits=5, description="Mean squared error of the SAE's reconstruction of its input."),
    # Image BCE of VAE + SAE (nats per image): tens to thousands, so one decimal is plenty.
    MetricSpec("bce", "BCE", digits=1,
               description="Image BCE (nats per image) when the SAE's reconstruction replaces the representation it "
                           "read in the VAE and is decoded to images."),
    MetricSpec("mig", "MIG", digits=3,
               description="disentanglement_lib's discrete MIG of the SAE codes: the gap between the two most "
                           "informative codes over the factor's entropy, mean over factors."),
    # The VAE's own MIG, kept beside the SAE's in the summary's "vae" section.
    MetricSpec("mig_vae", "VAE MIG", digits=3, path=("vae", "mig"),
               description="The same MIG of the VAE's latent means."),
    # Beyond MIG (metrics/interpretability.py): per code, the gap between its two most informative factors,
    # as Li et al. normalise it and over H(code).
    MetricSpec("mig_sup", "MIG-sup", digits=3,
               description="MIG-sup as Li et al. (2020) compute it: per code, the largest minus the second "
                           "largest MI / H(factor) over factors, mean over the codes that vary."),
    MetricSpec("mig_sup_hcode", "MIG-sup/H(z)", digits=3,
               description="The same gap of MI over factors divided by the code's own entropy H(code) instead: a "
                           "rarely firing code that carries one factor reaches 1 (not Li et al.'s MIG-sup)."),
    # DCI (Eastwood & Williams 2018) from two importance models (metrics/dci.py): gradient-boosted trees as
    # disentanglement_lib fits them (final evaluation, when eval.dci_tree_samples asks for it), and the
    # ridge probe's weights rescaled per factor (every evaluation).
    MetricSpec("dci_trees_disentanglement", "DCI D", digits=3,
               description="DCI disentanglement as disentanglement_lib computes it: importances of gradient-boosted "
                           "trees (scikit-learn, 100 stages of depth 3) fitted per factor on eval.dci_tree_samples "
                           "inputs (final evaluation only)."),
    MetricSpec("dci_trees_completeness", "DCI C", digits=3,
               description="DCI completeness from the same tree importances."),
    MetricSpec("dci_trees_informativeness", "DCI I %", unit="%", scale=100.0, digits=1,
               csv="dci_trees_informativeness_pct",
               description="DCI informativeness: the trees' held-out accuracy per factor on as many other inputs, "
                           "mean over factors."),
    MetricSpec("dci_ridge_disentanglement", "DCI D ridge", digits=3,
               description="DCI disentanglement from the ridge probe's absolute weights, each factor's column "
                           "summed to 1 (a fast stand-in for the trees, at every evaluation; not comparable with "
                           "published DCI)."),
    MetricSpec("dci_ridge_completeness", "DCI C ridge", digits=3,
               description="DCI completeness from the same ridge importances."),
    # Held-out accuracy of a linear probe per factor, mean over factors: from the SAE code, and from the
    # SAE's input (what the code could at best keep). DCI's informativeness is the code probe's accuracy.
    MetricSpec("probe_acc", "probe acc %", unit="%", scale=100.0, digits=1, csv="probe_acc_pct",
               description="Held-out accuracy of a linear probe from the SAE code per factor, mean over factors "
                           "(DCI's informativeness)."),
    MetricSpec("probe_acc_input", "probe acc input %", unit="%", scale=100.0, digits=1,
               csv="probe_acc_input_pct",
               description="The same probe's accuracy from the SAE's input: what the code could keep at best."),
    # Per factor value, the best single neuron's AUROC (value vs rest); the share of values some neuron
    # detects with AUROC > 0.9. Both averaged per factor, then over factors.
    MetricSpec("auroc_best", "best AUROC", digits=3,
               description="Per factor value, the best single neuron's AUROC for that value against the rest; "
                           "averaged per factor, then over factors."),
    MetricSpec("auroc_coverage", "AUROC>0.9 %", unit="%", scale=100.0, digits=1, csv="auroc_coverage_pct",
               description="Share of factor values some neuron detects with AUROC > 0.9; averaged per factor, "
                           "then over factors."),
    # Only runs with a schedule measure before sparsification; only runs with extended epochs revive.
    MetricSpec("specialized_before_sparsification", "spec. dense", digits=0,
               description="Specialized neurons after the first epoch, before the schedule sparsified the SAE "
                           "(runs with a schedule only)."),
    # Specialized neurons: MI / H(factor) >= tau and >= 2x any other factor (the first definition, kept),
    # and the same rule on MI / H(code), which a rarely firing neuron can meet.
    MetricSpec("specialized", "spec.", digits=0,
               description="Live neurons whose MI / H(factor) with one factor is at least eval.specialized_tau "
                           "and at least twice that with any other factor."),
    MetricSpec("specialized_code", "spec. per code", digits=0,
               description="Specialized neurons by the same rule on MI / H(code), which a rarely firing neuron "
                           "can meet."),
    MetricSpec("revived", "revived", digits=0,
               description="Neurons dead before the extended epochs that fire afterwards on at least "
                           "eval.revival_frequency of the evaluation inputs."),
    MetricSpec("newly_dead", "newly dead", digits=0,
               description="Neurons alive before the extended epochs and dead after them."),
    # Representational stability (engine/stability.py, metrics/stability.py): against the run's first mark.
    MetricSpec("survival", "survival %", unit="%", scale=100.0, digits=1, csv="survival_pct",
               description="Share of the first evaluation mark's live neurons whose decoder direction a live neuron "
                           "still has (one-to-one Hungarian matching, cosine ≥ 0.7)."),
    MetricSpec("survival_cosine", "survival cos", digits=3,
               description="Mean over the first mark's live neurons of their best decoder cosine with a live neuron "
                           "now."),
    MetricSpec("cka_first", "CKA vs first", digits=3,
               description="Linear CKA between the codes now and at the first evaluation mark, on the first 2,000 "
                           "evaluation inputs."),
    # Feature splitting and absorption against the ground truth (final evaluation, metrics/absorption.py).
    MetricSpec("ksparse_f1_1", "k=1 probe F1", digits=3,
               description="F1 of a logistic probe on the single neuron that best separates a factor value from "
                           "the rest, mean over values then factors (held-out half of the evaluation set)."),
    MetricSpec("ksparse_f1_2", "k=2 probe F1", digits=3,
               description="The same probe on the best 2 neurons."),
    MetricSpec("ksparse_f1_5", "k=5 probe F1", digits=3,
               description="The same probe on the best 5 neurons; a rise over k = 1 says values are split over "
                           "neurons."),
    MetricSpec("absorption", "absorption %", unit="%", scale=100.0, digits=1, csv="absorption_pct",
               description="Share of a factor value's inputs where its best-detecting neuron is silent while one of "
                           "its 5 nearest decoder neighbours fires, mean over values then factors."),
    MetricSpec("updates", "updates", digits=0, description="The SAE's optimiser updates in all."),
    MetricSpec("seconds", "time", unit="s", digits=0, path=("seconds",),
               description="Wall time of the whole run."),
)
# The metrics read against ground-truth factors (or the VAE a file's activations do not come from).
_NEED_FACTORS = {"mig", "mig_vae", "mig_sup", "mig_sup_hcode", "dci_trees_disentanglement", "dci_trees_completeness",
                 "dci_trees_informativeness", "dci_ridge_disentanglement", "dci_ridge_completeness", "probe_acc",
                 "probe_acc_input", "auroc_best", "auroc_coverage", "specialized_before_sparsification", "specialized",
                 "specialized_code", "ksparse_f1_1", "ksparse_f1_2", "ksparse_f1_5", "absorption", "bce"}
SPECS = tuple(dataclasses.replace(s, needs_factors=True) if s.key in _NEED_FACTORS else s for s in SPECS)
_BY_KEY = {s.key: s for s in SPECS}


def dead_spec(key: str) -> MetricSpec:
    """The spec of ``dead@<t>`` (a key as :func:`threshold_key` writes it) or ``dead_freq@<f>``
    (:func:`frequency_key`): the dead fraction's spec at that threshold or firing frequency."""
    if is_threshold_key(key):
        t = key[len(DEAD_PREFIX):]
        return dataclasses.replace(
            DEAD, key=key, label=f"{DEAD.label} @{t}", csv=f"{DEAD.csv}@{t}",
            description=f"Fraction of neurons whose activation never exceeds {t} on the evaluation set.")
    if is_frequency_key(key):
        f = key[len(RARE_PREFIX):]
        return dataclasses.replace(
            DEAD, key=key, label=f"{DEAD.label} f<{f}", csv=f"{DEAD.csv}_freq<{f}",
            description=f"Fraction of neurons firing on fewer than a fraction {f} of the evaluation inputs.")
    raise KeyError(f"{key!r} is not a dead@<threshold> or dead_freq@<frequency> key")


def spec(key: str) -> MetricSpec:
    """The spec of a metric key, the dead@<t> family included; KeyError for a key without one."""
    if key in _BY_KEY:
        return _BY_KEY[key]
    if is_threshold_key(key) or is_frequency_key(key):
        return dead_spec(key)
    raise KeyError(f"no metric spec for {key!r}; known: {', '.join(_BY_KEY)}, dead@<threshold>, "
                   "dead_freq@<frequency>")


def dead_keys(finals: Iterable[Mapping[str, Any]]) -> list[str]:
    """The dead-fraction keys of some final dicts: every ``dead@<t>``, then every ``dead_freq@<f>``, each
    in the order the first run that has them lists them."""
    finals = list(finals)
    keys: list[str] = []
    for belongs in (is_threshold_key, is_frequency_key):
        for final in finals:
            keys.extend(k for k in final if belongs(k) and k not in keys)
    return keys
