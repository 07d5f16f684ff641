"""The vocabularies of the schema's choices (methods, normalisations, schedules, sources, datasets)
and the one way a run's sparsity is written: names code outside the schema checks and lists."""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

# The vocabularies of the schema's choices, named so that code outside it (nn, the front ends) checks
# and lists the same names: each tuple is read from its Literal, never spelt again.
SparsityMethod = Literal["topk", "l1", "batchtopk", "jumprelu"]
Normalization = Literal["none", "unit_norm", "standardise"]
# Offered once and withdrawn, with why (a config naming one is refused with this reason, not a bare list).
WITHDRAWN_NORMALIZATIONS = {
    "centre": "subtracting the mean first is the same model as none (b_dec starts at the data mean and Adam "
              "does not see a shift), so its runs only replicated none; use none",
}
ScheduleKind = Literal["constant", "linear", "cosine", "exponential"]
LRDecay = Literal["none", "cosine", "linear"]
AuxKCandidates = Literal["relu", "softplus"]
RepresentationSource = Literal["encoder_hidden", "latent_mean"]
SPARSITY_METHODS = typing.get_args(SparsityMethod)
# Methods whose sparsity parameter is k (a number of neurons); the others are set by a penalty weight.
K_METHODS = ("topk", "batchtopk")
PENALTY_METHODS = tuple(m for m in SPARSITY_METHODS if m not in K_METHODS)
NORMALIZATIONS = typing.get_args(Normalization)


def _not_withdrawn(value):
    if isinstance(value, str) and value in WITHDRAWN_NORMALIZATIONS:
        raise ValueError(f"{value!r} is no longer offered: {WITHDRAWN_NORMALIZATIONS[value]}")
    return value


# A normalisation as configs name it: a withdrawn one is refused with its reason before the choices are checked.
NormalizationSetting = Annotated[Normalization, BeforeValidator(_not_withdrawn)]
SCHEDULE_KINDS = typing.get_args(ScheduleKind)
LR_DECAYS = typing.get_args(LRDecay)
AUXK_CANDIDATES = typing.get_args(AuxKCandidates)
REPRESENTATION_SOURCES = typing.get_args(RepresentationSource)
DataSource = Literal["auto", "official", "tfds", "procedural"]
DATA_SOURCES = typing.get_args(DataSource)

# The floating-point types by name: what Keras' floatx may be, and the weights and activations files hold.
FLOAT_TYPES = ("float16", "float32", "float64")

# The datasets, the one list of them: name -> images in its full factor grid, in registration order.
# ``data.register`` adds a new dataset here (through :func:`register_dataset`), so the schema accepts
# every dataset the data package can open; ``DATASET_NAMES`` is a live view of the names.
DATASET_SIZES: dict[str, int] = {"dsprites": 737_280, "shapes3d": 480_000}
DATASET_NAMES = DATASET_SIZES.keys()


def register_dataset(name: str, size: int) -> None:
    """Make ``name`` a dataset the schema accepts (``data.dataset``), of ``size`` images."""
    if not name or not isinstance(name, str):
        raise ValueError(f"a dataset name must be a non-empty string, got {name!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise ValueError(f"dataset {name!r}: size must be a positive number of images, got {size!r}")
    DATASET_SIZES[name] = size


@dataclass(frozen=True)
class Choices:
    """Field metadata for a string field that takes one of ``names``, a collection read when a value is
    validated or a form is built (so names registered later count): what a ``Literal`` is for a fixed
    vocabulary. :func:`field_choices` reads it."""

    names: typing.Collection[str]

    def check(self, value: str) -> str:
        if value not in self.names:
            quoted = [repr(n) for n in self.names]
            expected = " or ".join(quoted) if len(quoted) <= 2 else ", ".join(quoted[:-1]) + " or " + quoted[-1]
            raise PydanticCustomError("literal_error", "Input should be {expected}", {"expected": expected})
        return value


# The SAE's inputs read from a user's file (data.path) instead of a VAE trained on a ground-truth image set:
# a dataset name of its own, outside the image datasets above (it has no grid, no images, no VAE).
ACTIVATIONS = "activations"
ACTIVATION_SUFFIXES = (".npz", ".npy", ".h5", ".hdf5", ".safetensors")
# Whether an activations file's training rows are held in memory or read from the file as training uses
# them; read so only from the formats that can be read at random a batch at a time.
Streaming = Literal["auto", "always", "never"]
STREAMING_SUFFIXES = (".npy", ".h5", ".hdf5")
# Under "auto", training rows larger than this (as float32) are read from the file as training uses them.
STREAMING_AUTO_BYTES = 512 * 2**20
# A labelled image set of the user's (images and factors in one file), fed to a model of theirs (sae.model).
IMAGES = "images"
IMAGE_SUFFIXES = (".npz",)
MODEL_SUFFIX = ".keras"  # the one model format loaded, in Keras' safe mode
# Datasets that are files of the user's, named by data.path, outside the registered image datasets.
FILE_DATASETS = (IMAGES, ACTIVATIONS)


class _DatasetChoices(typing.Collection[str]):
    """The registered image datasets, then ``images`` and ``activations``: a live view, as ``DATASET_NAMES`` is."""

    def __contains__(self, name) -> bool:
        return name in FILE_DATASETS or name in DATASET_SIZES

    def __iter__(self):
        yield from DATASET_SIZES
        yield from FILE_DATASETS

    def __len__(self) -> int:
        return len(DATASET_SIZES) + len(FILE_DATASETS)


DATASET_CHOICES = _DatasetChoices()
_DATASET_CHOICES = Choices(DATASET_CHOICES)
DatasetName = Annotated[str, AfterValidator(_DATASET_CHOICES.check), _DATASET_CHOICES]


def field_choices(info: FieldInfo) -> tuple[str, ...] | None:
    """The names a field's :class:`Choices` allow now; None for a field without (a ``Literal`` field's
    choices are its annotation's)."""
    return next((tuple(m.names) for m in info.metadata if isinstance(m, Choices)), None)


def sparsity_label(method: str | None, value: float, spaced: bool = False) -> str:
    """A run's sparsity as the front ends and reports write it: ``k=50`` for a k-sparse method, else the
    penalty weight, ``λ=0.3`` (``k = 50`` with ``spaced``, as the run screen shows it)."""
    sign = " = " if spaced else "="
    return f"k{sign}{value:g}" if method in K_METHODS else f"λ{sign}{value:g}"


