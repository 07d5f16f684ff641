"""Metrics of codes and reconstructions (numpy only; arrays are samples x units)."""

from collapse_tui.metrics.disentanglement import (
    discretize,
    entropy,
    mig,
    mig_per_factor,
    mutual_info_matrix,
    normalized_mi,
)
from collapse_tui.metrics.dci import DCI, TreeImportance, dci, ridge_importance, tree_importance, tree_split
from collapse_tui.metrics.dead_causes import DeadCauses, dead_causes
from collapse_tui.metrics.input_rank import InputRank, input_rank
from collapse_tui.metrics.interpretability import (
    Alignment,
    Probe,
    auroc_matrix,
    average_ranks,
    code_entropy,
    feature_alignment,
    holdout_split,
    linear_probe,
    mig_sup,
    mig_sup_hcode,
    mig_sup_hcode_per_code,
    mig_sup_per_code,
    specialized_neurons_per_code,
)
from collapse_tui.metrics.neurons import (
    DensityHistogram,
    Specialization,
    activation_density_histogram,
    activation_frequency,
    dead_fraction,
    dead_mask,
    l0,
    rare_fraction,
    rare_mask,
    resolves_frequency,
    specialized_neurons,
)
from collapse_tui.metrics.neuron_profiles import decoder_neighbours, neuron_profiles
from collapse_tui.metrics.reconstruction import bce, bce_from_logits, explained_variance, mse

__all__ = [
    "DeadCauses", "InputRank", "dead_causes", "input_rank",
    "DCI", "TreeImportance", "ridge_importance", "tree_importance", "tree_split", "Alignment", "Probe", "auroc_matrix", "average_ranks", "code_entropy", "dci", "feature_alignment",
    "holdout_split", "linear_probe", "mig_sup", "mig_sup_hcode", "mig_sup_hcode_per_code", "mig_sup_per_code", "specialized_neurons_per_code",
    "DensityHistogram", "Specialization", "activation_density_histogram", "activation_frequency", "bce",
    "bce_from_logits", "dead_fraction", "decoder_neighbours", "dead_mask", "discretize", "entropy", "explained_variance", "l0",
    "mig", "mig_per_factor", "mse", "mutual_info_matrix", "neuron_profiles", "normalized_mi", "rare_fraction", "rare_mask",
    "resolves_frequency", "specialized_neurons",
]
