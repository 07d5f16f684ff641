"""Keras 3 models of collapse-tui, written with ``keras`` and ``keras.ops`` only (any backend)."""

from collapse_tui.nn.layers import InferenceView, TopK, inference_view, reset_compiled_functions
from collapse_tui.nn.regularizers import L1ActivityRegularizer
from collapse_tui.nn.sae import NORMALIZATIONS, SAE_METHODS, SparseAutoencoder
from collapse_tui.nn.schedules import SCHEDULE_KINDS, SparsitySchedule, SparsityScheduler
from collapse_tui.nn.vae import REPRESENTATION_SOURCES, ConvVAE

__all__ = [
    "ConvVAE",
    "InferenceView",
    "L1ActivityRegularizer",
    "NORMALIZATIONS",
    "REPRESENTATION_SOURCES",
    "SAE_METHODS",
    "SCHEDULE_KINDS",
    "SparseAutoencoder",
    "SparsitySchedule",
    "SparsityScheduler",
    "TopK",
    "inference_view",
    "reset_compiled_functions",
]
