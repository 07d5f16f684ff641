"""The run configuration: one schema that validates YAML, names every error by its field path, and
describes each field (the descriptions and bounds are also what a form or the docs show).

A config file holds one run (``name``, ``seed``, ``data``, ``vae``, ``sae``, ``eval``) and, optionally,
a ``sweep:`` block: dotted keys mapped to lists of values, expanded as a grid (a list of such blocks
is the union of their grids), e.g.::

    sweep:
      - {sae.method: [topk], sae.k: [100, 50, 25]}
      - {sae.method: [l1], sae.l1_coefficient: [0.01, 0.03, 0.1]}

One idea a module: :mod:`~collapse_tui.config.vocabulary` (the names of every choice),
:mod:`~collapse_tui.config.schema` (the run's sections and validation; its SAE's schedules and remedies in
:mod:`~collapse_tui.config.schedules` and :mod:`~collapse_tui.config.remedies`), :mod:`~collapse_tui.config.dotted`
(dotted keys), :mod:`~collapse_tui.config.sweeps` (expanding a sweep) and :mod:`~collapse_tui.config.files`
(reading YAML safely). Everything is importable from here (``from collapse_tui.config import validate``).
"""

from __future__ import annotations

from collapse_tui.config.dotted import flatten, set_dotted
from collapse_tui.config.files import (
    MAX_CONFIG_BYTES,
    MAX_DEPTH,
    MAX_NODES,
    load,
    load_yaml,
    parse_yaml,
)
from collapse_tui.config.remedies import REMEDY_SWITCHES, RemediesConfig
from collapse_tui.config.schedules import LRScheduleConfig, ScheduleConfig
from collapse_tui.config.section import Section
from collapse_tui.config.schema import (
    ConfigError,
    DataConfig,
    EvalConfig,
    RunConfig,
    SAEConfig,
    VAEConfig,
    field_docs,
    shorten,
    stored_config_errors,
    validate,
)
from collapse_tui.config.sweeps import LARGE_SWEEP, MAX_RUNS, UNSWEPT, expand, grid_size
from collapse_tui.config.vocabulary import (
    ACTIVATION_SUFFIXES,
    ACTIVATIONS,
    DATA_SOURCES,
    DATASET_CHOICES,
    FLOAT_TYPES,
    FILE_DATASETS,
    STREAMING_AUTO_BYTES,
    STREAMING_SUFFIXES,
    Streaming,
    IMAGE_SUFFIXES,
    IMAGES,
    MODEL_SUFFIX,
    DATASET_NAMES,
    DATASET_SIZES,
    AUXK_CANDIDATES,
    K_METHODS,
    LR_DECAYS,
    NORMALIZATIONS,
    PENALTY_METHODS,
    REPRESENTATION_SOURCES,
    SCHEDULE_KINDS,
    SPARSITY_METHODS,
    WITHDRAWN_NORMALIZATIONS,
    Choices,
    DatasetName,
    DataSource,
    Normalization,
    RepresentationSource,
    ScheduleKind,
    SparsityMethod,
    field_choices,
    register_dataset,
    sparsity_label,
)

__all__ = [
    "ACTIVATION_SUFFIXES", "ACTIVATIONS", "DATASET_CHOICES", "FILE_DATASETS", "FLOAT_TYPES", "IMAGES",
    "IMAGE_SUFFIXES", "MODEL_SUFFIX", "STREAMING_AUTO_BYTES", "STREAMING_SUFFIXES", "Streaming", "Choices", "ConfigError", "DATASET_NAMES", "DATASET_SIZES", "DATA_SOURCES", "DataConfig", "DataSource",
    "DatasetName", "EvalConfig", "K_METHODS", "LARGE_SWEEP", "UNSWEPT", "MAX_CONFIG_BYTES", "MAX_DEPTH", "MAX_NODES",
    "AUXK_CANDIDATES", "LR_DECAYS", "LRScheduleConfig", "MAX_RUNS", "NORMALIZATIONS", "Normalization", "PENALTY_METHODS", "REMEDY_SWITCHES",
    "REPRESENTATION_SOURCES", "RemediesConfig", "RepresentationSource", "RunConfig", "SAEConfig",
    "SCHEDULE_KINDS", "SPARSITY_METHODS", "ScheduleConfig", "ScheduleKind", "Section", "SparsityMethod",
    "VAEConfig", "WITHDRAWN_NORMALIZATIONS", "expand", "field_choices", "field_docs", "flatten", "grid_size", "load", "load_yaml",
    "parse_yaml", "register_dataset", "set_dotted", "shorten", "sparsity_label", "stored_config_errors",
    "validate",
]
