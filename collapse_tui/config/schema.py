"""The schema of one run: its sections, their types, bounds and descriptions, and validation that names
every error by its field path."""

from __future__ import annotations

import os
import re
import typing
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from collapse_tui.config.remedies import RemediesConfig
from collapse_tui.config.schedules import LRScheduleConfig, ScheduleConfig
from collapse_tui.config.section import Section
from collapse_tui.config.vocabulary import (
    ACTIVATION_SUFFIXES,
    ACTIVATIONS,
    DATASET_SIZES,
    K_METHODS,
    IMAGE_SUFFIXES,
    IMAGES,
    MODEL_SUFFIX,
    REPRESENTATION_SOURCES,
    STREAMING_SUFFIXES,
    Streaming,
    DatasetName,
    DataSource,
    NormalizationSetting,
    SparsityMethod,
    field_choices,
)


class ConfigError(ValueError):
    """An invalid configuration. ``errors`` holds one ``"field.path: what is wrong"`` line per problem."""

    def __init__(self, errors: list[str], source: str | None = None):
        self.errors = list(errors)
        self.source = source
        head = f"invalid config{f' {source}' if source else ''}"
        super().__init__(head + ":\n" + "\n".join(f"  {e}" for e in self.errors))




class DataConfig(Section):
    dataset: DatasetName = Field(
        "dsprites", description="Ground-truth dataset whose factors MIG is measured against; activations: the SAE "
                                "reads activations from data.path (no VAE), with the file's factors if it has them; "
                                "images: a labelled image set at data.path, fed to sae.model."
    )
    source: DataSource = Field(
        "auto",
        description="Where images come from: 'official' (the published file), 'tfds' (a prepared "
                    "tensorflow-datasets copy), 'procedural' (rendered offline), or 'auto': the first of "
                    "these found.",
    )
    path: str | None = Field(
        None,
        description="The official file, or a directory holding it or a prepared tfds copy; empty = "
                    "--data-dir, then $COLLAPSE_TUI_DATA. With dataset activations: the activations file "
                    "(.npz, .npy, .h5, .safetensors); with dataset images: the labelled image set (.npz).",
    )
    streaming: Streaming = Field(
        "auto",
        description="Activations files: 'always' reads the training rows from the file a batch at a time as "
                    "training uses them (.npy, .h5; for files larger than memory), 'never' holds them in memory, "
                    "'auto' streams when they would take over 512 MiB as float32.",
    )

    @field_validator("path")
    @classmethod
    def _expand_path(cls, value: str | None) -> str | None:
        if not value:
            return None
        path = os.path.expanduser(value)
        if os.path.exists(path) and not (os.path.isfile(path) or os.path.isdir(path)):
            # A pipe or a device: reading it as a dataset would wait for ever.
            raise ValueError(f"{shorten(path)} is neither a file nor a directory")
        return path

    cache: bool = Field(
        True, description="Keep procedural renders on disk ($COLLAPSE_TUI_CACHE) so the next run starts at once."
    )
    n_train: int = Field(
        20_000, ge=64,  # at most the dataset's images: RunConfig checks it against DATASET_SIZES
        description="Images the VAE and the SAE train on, sampled without replacement.",
    )


class VAEConfig(Section):
    latent_dim: int = Field(10, ge=1, le=256, description="Number of latent dimensions.")
    hidden_units: int = Field(256, ge=8, le=4096, description="Width of the encoder's hidden layer.")
    beta: float = Field(4.0, ge=0.0, le=1000.0, description="Weight of the KL term (beta-VAE).")
    epochs: int = Field(10, ge=1, le=10_000, description="Training epochs of the VAE.")
    batch_size: int = Field(64, ge=1, le=65_536, description="VAE minibatch size.")
    learning_rate: float = Field(1e-4, gt=0.0, le=1.0, description="Adam learning rate of the VAE.")
    seed: int | None = Field(
        None, ge=0, le=2**31 - 1,
        description="Seed of the data draw and the VAE; empty = the run's seed. Set it to train the SAEs of several "
                    "seeds on one VAE and its codes (the cross-seed feature baseline needs that).",
    )




class SAEConfig(Section):
    model: str | None = Field(
        None, max_length=4096,
        description="A Keras model (.keras file, loaded in safe mode) whose layer sae.source the SAE reads, applied "
                    "to the run's images in [0, 1] instead of a VAE; empty = the VAE trained here.",
    )
    source: str = Field(
        "encoder_hidden", min_length=1, max_length=200,
        description="SAE input: the VAE's encoder hidden layer (encoder_hidden) or its latent means (latent_mean); "
                    "with sae.model, the name of the model's layer whose output the SAE reads.",
    )
    normalization: NormalizationSetting = Field(
        "none",
        description="Input normalisation of the SAE: none; unit_norm (one scalar, so inputs have unit mean squared "
                    "norm, as Gemma Scope trains JumpReLU); standardise (per unit, near-constant units guarded).",
    )
    n_neurons: int = Field(500, ge=1, le=100_000, description="Dictionary size (neurons) of the SAE.")
    method: SparsityMethod = Field(
        "topk", description="Sparsification: the k largest per input (topk) or per batch (batchtopk), an L1 "
                            "penalty (l1), or a learned threshold with an L0 penalty (jumprelu)."
    )
    k: int = Field(50, ge=1, le=100_000, description="Active neurons per input at the end (topk, batchtopk).")
    l1_coefficient: float = Field(
        1e-3, gt=0.0, le=1e3, description="Final penalty coefficient: on summed activations (l1) or on L0 (jumprelu)."
    )
    jumprelu_threshold: float = Field(1e-3, gt=0.0, le=1e3, description="Initial threshold of every JumpReLU neuron.")
    jumprelu_bandwidth: float = Field(
        1e-3, gt=0.0, le=1e3, description="Window width of JumpReLU's straight-through gradient estimate.",
    )
    batchtopk_threshold_momentum: float = Field(
        1e-3, gt=0.0, le=1.0,
        description="BatchTopK: weight of each training batch's smallest kept value in the inference threshold's "
                    "moving average (dictionary_learning: 1 - 0.999).",
    )
    batchtopk_threshold_start: int = Field(
        1000, ge=0, le=10_000_000,
        description="BatchTopK: training batches before the inference threshold's average starts "
                    "(dictionary_learning: 1000).",
    )
    target_l0: float | None = Field(
        None, gt=0.0, le=100_000,
        description="L1 / JumpReLU: adapt the penalty coefficient at every update so the batch L0 reaches this, "
                    "starting from sae.l1_coefficient (methods compared at equal sparsity); sae.schedule then "
                    "moves the target (from schedule.start, an L0) rather than the coefficient; empty = the "
                    "coefficient follows its schedule.",
    )
    target_l0_gain: float = Field(
        1e-3, gt=0.0, le=1.0,
        description="The target-L0 controller's step: each update multiplies the coefficient by "
                    "exp(gain × clip((L0 − target) / target, −1, 1)).",
    )
    remedies: RemediesConfig = Field(default_factory=RemediesConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    epochs: int = Field(20, ge=1, le=100_000, description="Training epochs of the SAE.")
    extended_epochs: int = Field(
        0, ge=0, le=100_000,
        description="Further epochs at the final sparsity after sae.epochs, reporting how many dead neurons "
                    "revive (0 = none).",
    )
    batch_size: int = Field(256, ge=1, le=65_536, description="SAE minibatch size.")
    learning_rate: float = Field(1e-3, gt=0.0, le=1.0, description="Adam learning rate of the SAE.")
    adam_beta1: float = Field(
        0.9, ge=0.0, lt=1.0,
        description="Adam's first-moment decay of the SAE (0 as Gemma Scope trains JumpReLU; Keras' default 0.9).",
    )
    lr_schedule: LRScheduleConfig = Field(default_factory=LRScheduleConfig)

    @field_validator("model")
    @classmethod
    def _model_file(cls, value: str | None) -> str | None:
        if not value:
            return None
        path = os.path.expanduser(value)
        if not path.lower().endswith(MODEL_SUFFIX):
            raise ValueError(f"{shorten(path)} is not a {MODEL_SUFFIX} file (the Keras format a model is loaded from "
                             "in safe mode; save it with model.save('name.keras'))")
        return path

    @model_validator(mode="after")
    def _check_sparsity(self) -> "SAEConfig":
        errors = []
        if self.model is None and self.source not in REPRESENTATION_SOURCES:
            errors.append(f"source: {shorten(repr(self.source))} is not a representation of the VAE "
                          f"({', '.join(REPRESENTATION_SOURCES)}): a layer's name needs sae.model")
        outside = [e for e in self.remedies.resample_epochs if not 1 <= e <= self.epochs]
        if outside:
            errors.append(f"remedies.resample_epochs: {outside[0]} is not an epoch of the SAE (1 .. sae.epochs = "
                          f"{self.epochs})")
        if self.method in K_METHODS:
            if self.k > self.n_neurons:
                errors.append(f"k: {self.k} exceeds sae.n_neurons ({self.n_neurons})")
            start = self.schedule.start
            if start is not None and (start != int(start) or not 1 <= start <= self.n_neurons):
                errors.append(
                    f"schedule.start: {start} must be a whole number of neurons between 1 and "
                    f"sae.n_neurons ({self.n_neurons}) for method {self.method}"
                )
        # A neuron's mean firing frequency is L0 / n_neurons: a floor at or above it leaves some neuron below it
        # always, raised without end.
        final_l0 = self.k if self.method in K_METHODS else self.target_l0
        l0 = final_l0 and min(final_l0, self.schedule.start or final_l0)  # the lowest along the k or target path
        if self.remedies.bias_floor and l0 and self.remedies.bias_floor * self.n_neurons >= l0:
            errors.append(f"remedies.bias_floor: {self.remedies.bias_floor:g} is not below the neurons' mean firing "
                          f"frequency, {l0:g} / sae.n_neurons ({self.n_neurons}) = {l0 / self.n_neurons:g}")
        if self.target_l0 is not None:
            if self.method in K_METHODS:
                errors.append(f"target_l0: {self.method} sets its L0 by k; the controller is for l1 and jumprelu")
            elif self.target_l0 > self.n_neurons:
                errors.append(f"target_l0: {self.target_l0:g} exceeds sae.n_neurons ({self.n_neurons})")
            elif self.schedule.start is not None and not 0 < self.schedule.start <= self.n_neurons:
                errors.append(f"schedule.start: {self.schedule.start:g} is the controller's first target L0 here; "
                              f"it must be above 0 and at most sae.n_neurons ({self.n_neurons})")
        if errors:
            raise ValueError("; ".join(errors))
        return self


class EvalConfig(Section):
    n_samples: int = Field(
        10_000, ge=10, description="Size of the fixed evaluation set (held apart from training)."
    )
    every: int = Field(
        1, ge=0, le=100_000,
        description="Evaluate every N SAE epochs (0 = only at the end; the end is always evaluated).",
    )
    thresholds: list[float] = Field(
        default_factory=lambda: [0.0, 1e-6, 1e-3, 1e-2],
        min_length=1, max_length=16,
        description="Dead-neuron thresholds: a neuron is dead if it never exceeds the threshold.",
    )
    density_thresholds: list[float] = Field(
        default_factory=lambda: [1e-4, 1e-3],
        max_length=16,
        description="Dead by firing frequency: a neuron firing on fewer than this fraction of evaluation "
                    "inputs counts as dead at that density (as SAE libraries count features below a density); "
                    "measured only where that fraction is more than one evaluation input.",
    )
    revival_frequency: float = Field(
        1e-3, ge=0.0, le=1.0,
        description="After extended training, a neuron dead before it counts as revived only if it fires on "
                    "at least this fraction of evaluation inputs.",
    )
    explained_variance_floor: float | None = Field(
        0.0, ge=-1e12, le=1.0,
        description="A run whose SAE ends at or below this explained variance (no better than the inputs' "
                    "mean at 0) is flagged suspect and kept out of results tables; empty = never flagged.",
    )
    n_bins: int = Field(20, ge=2, le=1000, description="Equal-width bins per code for MIG.")
    specialized_tau: float = Field(
        0.1, ge=0.0, le=1.0,
        description="Specialized neuron: normalised MI with one factor at least this (and twice any other).",
    )
    dci_tree_samples: int = Field(
        0, ge=0, le=1_000_000,
        description="DCI with gradient-boosted trees as disentanglement_lib computes it, at the final evaluation: "
                    "this many evaluation inputs train the trees and as many others score them (fewer if the "
                    "set is smaller); 0 = not computed (on 2 CPU cores, 1,000 inputs take minutes per run).",
    )

    @model_validator(mode="after")
    def _check_thresholds(self) -> "EvalConfig":
        bad = [t for t in self.thresholds if t < 0]
        if bad:
            raise ValueError(f"thresholds: {bad[0]} is negative (thresholds must be >= 0)")
        bad = [f for f in self.density_thresholds if not 0.0 < f <= 1.0]
        if bad:
            raise ValueError(f"density_thresholds: {bad[0]} is not a fraction of inputs in (0, 1]")
        return self


class RunConfig(Section):
    name: str = Field(
        "run", min_length=1, max_length=80, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
        description="Run name (letters, digits, . _ -); the run directory is <timestamp>-<name>.",
    )
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seed for data sampling and initialisation.")
    runs_dir: str = Field("runs", min_length=1, description="Directory where runs are written.")
    models_dir: str = Field(
        "models", min_length=1, description="Directory of trained VAEs reused across runs with identical config."
    )
    bank_size: int = Field(
        16, ge=1, le=4096,
        description="SAEs of a sweep trained together in one bank, one optimiser step for all (each exactly as "
                    "alone; 1: each alone).",
    )
    data_parallel: bool = Field(
        False,
        description="Train the VAE and the SAE bank data-parallel over every local accelerator (JAX only: "
                    "keras.distribution.DataParallel); batch sizes and data.n_train: multiples of their count.",
    )
    data: DataConfig = Field(default_factory=DataConfig)
    vae: VAEConfig = Field(default_factory=VAEConfig)
    sae: SAEConfig = Field(default_factory=SAEConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @field_validator("runs_dir", "models_dir")
    @classmethod
    def _expand_home(cls, value: str) -> str:
        # "~/runs" means the home directory's runs, as in a shell; never a directory literally named "~".
        return os.path.expanduser(value)

    @model_validator(mode="after")
    def _check_sizes(self) -> "RunConfig":
        if self.data.streaming == "always" and self.data.dataset != ACTIVATIONS:
            raise ValueError(f"data.streaming: always reads an activations file's rows as training uses them; "
                             f"data.dataset {self.data.dataset} holds its inputs in memory")
        if self.data.dataset == IMAGES:  # its images are counted when the file is opened
            if not self.data.path or not self.data.path.lower().endswith(IMAGE_SUFFIXES):
                raise ValueError(f"data.path: data.dataset images reads a labelled image set from an "
                                 f"{'/'.join(IMAGE_SUFFIXES)} file (images uint8 N×H×W×C, factors N×F), named here")
            if self.sae.model is None:
                raise ValueError("sae.model: data.dataset images feeds a model of your own (the VAE is built for "
                                 "64×64 dsprites and shapes3d images); name its .keras file here")
            return self
        if self.data.dataset == ACTIVATIONS:  # its rows are counted when the file is opened
            if self.sae.model is not None:
                raise ValueError("sae.model: the activations file is already the SAE's input; a model reads images "
                                 "(data.dataset dsprites, shapes3d or images)")
            path = self.data.path
            if self.data.streaming == "always" and path and not path.lower().endswith(STREAMING_SUFFIXES):
                raise ValueError(f"data.streaming: always reads rows at random a batch at a time, which only "
                                 f"{', '.join(STREAMING_SUFFIXES)} files allow; {shorten(path)} is read whole")
            if self.data.streaming == "always" and self.data_parallel:
                raise ValueError("data.streaming: always feeds the bank batch by batch from the host, which "
                                 "data_parallel does not take; set one of them off")
            if not path:
                raise ValueError("data.path: data.dataset activations reads its inputs from a file, named here "
                                 f"({', '.join(ACTIVATION_SUFFIXES)})")
            if not path.lower().endswith(ACTIVATION_SUFFIXES):
                raise ValueError(f"data.path: {shorten(path)} is not an activations file (expected "
                                 f"{', '.join(ACTIVATION_SUFFIXES)})")
            return self
        size = DATASET_SIZES[self.data.dataset]
        if self.data.n_train > size:
            raise ValueError(f"data.n_train: {self.data.n_train} exceeds the {size} images of {self.data.dataset}")
        if self.eval.n_samples > size:
            raise ValueError(
                f"eval.n_samples: {self.eval.n_samples} exceeds the {size} images of {self.data.dataset}"
            )
        return self

    @property
    def sparsity(self) -> float:
        """The final sparsity parameter of the configured method (k or the penalty coefficient)."""
        return float(self.sae.k) if self.sae.method in K_METHODS else self.sae.l1_coefficient

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self, extra: dict[str, Any] | None = None) -> str:
        data = self.to_dict()
        if extra:
            data.update(extra)
        return yaml.safe_dump(data, sort_keys=False)


# --------------------------------------------------------------------------- validation and errors

def _path(loc: tuple) -> str:
    return ".".join(str(p) for p in loc if not (isinstance(p, str) and p.startswith("function-")))


def _allowed_keys(model: type[BaseModel], loc: tuple) -> list[str]:
    """The keys a section accepts, found by walking the schema along ``loc`` (the unknown key's parent)."""
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        else:
            return []
    return list(model.model_fields)


_NAMES_A_FIELD = re.compile(r"^[A-Za-z_][\w.]*: ")


def _format_errors(exc: ValidationError | list[dict], prefix: str = "") -> list[str]:
    lines = []
    for err in exc.errors() if isinstance(exc, ValidationError) else exc:
        loc = tuple(err["loc"])
        path = prefix + _path(loc)
        kind = err["type"]
        if kind == "extra_forbidden":
            allowed = _allowed_keys(RunConfig, loc[:-1])
            lines.append(f"{path}: unknown key; allowed: {', '.join(allowed)}")
        elif kind == "value_error":
            # Our own cross-field checks already name the field relative to the section; a field's own
            # check (data.path) says only what is wrong with it.
            msg = str(err["msg"]).removeprefix("Value error, ")
            for part in msg.split("; "):
                if _NAMES_A_FIELD.match(part):
                    head = path + "." if path else prefix
                    lines.append(f"{head}{part}")
                else:
                    lines.append(f"{path or prefix.rstrip('.') or 'config'}: {part}")
        else:
            lines.append(f"{path}: {err['msg']} (got {shorten(repr(err.get('input')))})")
    return lines


def shorten(text: str, limit: int = 200) -> str:
    """``text`` cut to about ``limit`` characters, saying how much was left out: an error quotes the value
    it rejects, and a value can be megabytes long."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit:,} more characters)"


def validate(data: dict[str, Any] | None, source: str | None = None) -> RunConfig:
    """Validate a run's dict (no ``sweep`` key) into a :class:`RunConfig`, raising :class:`ConfigError`."""
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError([f"the top level must be a mapping of keys to values, got {type(data).__name__}"], source)
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc), source) from None


def stored_config_errors(data: dict[str, Any]) -> list[str]:
    """What is wrong with the settings a run stored (its config.yaml, less what it adds beside them),
    one line each; keys this version's schema does not know are not errors: another version may have
    written them."""
    try:
        RunConfig.model_validate(data)
    except ValidationError as exc:
        return _format_errors([e for e in exc.errors() if e["type"] != "extra_forbidden"])
    return []



def field_docs() -> list[tuple[str, str, str, str]]:
    """``(dotted path, type, default, description)`` for every field: a form or reference table is built from it."""
    rows = []

    def walk(model: type[BaseModel], prefix: str) -> None:
        for name, field in model.model_fields.items():
            ann = field.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                walk(ann, f"{prefix}{name}.")
                continue
            default = field.get_default(call_default_factory=True)
            choices = field_choices(field)
            kind = "one of " + ", ".join(choices) if choices is not None else _type_name(ann)
            rows.append((prefix + name, kind, repr(default), field.description or ""))

    walk(RunConfig, "")
    return rows


def _type_name(ann: Any) -> str:
    args = typing.get_args(ann)
    if typing.get_origin(ann) is Literal:
        return "one of " + ", ".join(str(a) for a in args)
    if args and type(None) in args:
        return " or ".join(_type_name(a) for a in args if a is not type(None)) + " (or empty)"
    if typing.get_origin(ann) is list:
        return f"list of {_type_name(args[0])}" if args else "list"
    return getattr(ann, "__name__", str(ann))
