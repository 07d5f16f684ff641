"""Keras 3 models of collapse-tui, written with ``keras`` and ``keras.ops`` only (any backend)."""

# The schema's vocabularies (defined once, in collapse_tui.config), re-exported for nn's users.
from collapse_tui.config import K_METHODS, NORMALIZATIONS, PENALTY_METHODS, REPRESENTATION_SOURCES, SCHEDULE_KINDS
from collapse_tui.config import SPARSITY_METHODS as SAE_METHODS
from collapse_tui.nn.activations import BatchTopK, JumpReLU
from collapse_tui.nn.layers import InferenceView, KSparseActivation, TopK, inference_view, reset_compiled_functions
from collapse_tui.nn.regularizers import L1ActivityRegularizer
from collapse_tui.nn.resampling import DeadNeuronResampler, resample_dead_neurons
from collapse_tui.nn.sae import SparseAutoencoder
from collapse_tui.nn.schedules import SparsitySchedule, SparsityScheduler
from collapse_tui.nn.vae import ConvVAE

__all__ = [
    "BatchTopK",
    "ConvVAE",
    "DeadNeuronResampler",
    "InferenceView",
    "JumpReLU",
    "K_METHODS",
    "KSparseActivation",
    "L1ActivityRegularizer",
    "NORMALIZATIONS",
    "PENALTY_METHODS",
    "REPRESENTATION_SOURCES",
    "SAE_METHODS",
    "SCHEDULE_KINDS",
    "SparseAutoencoder",
    "SparsitySchedule",
    "SparsityScheduler",
    "TopK",
    "inference_view",
    "resample_dead_neurons",
    "reset_compiled_functions",
]
