"""Keras 3 models of collapse-tui, written with ``keras`` and ``keras.ops`` only (any backend)."""

from collapse_tui.nn.activations import BatchTopK, JumpReLU
from collapse_tui.nn.layers import InferenceView, TopK, inference_view, reset_compiled_functions
from collapse_tui.nn.regularizers import L1ActivityRegularizer
from collapse_tui.nn.resampling import DeadNeuronResampler, resample_dead_neurons
from collapse_tui.nn.sae import K_METHODS, NORMALIZATIONS, PENALTY_METHODS, SAE_METHODS, SparseAutoencoder
from collapse_tui.nn.schedules import SCHEDULE_KINDS, SparsitySchedule, SparsityScheduler
from collapse_tui.nn.vae import REPRESENTATION_SOURCES, ConvVAE

__all__ = [
    "BatchTopK",
    "ConvVAE",
    "DeadNeuronResampler",
    "InferenceView",
    "JumpReLU",
    "K_METHODS",
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
