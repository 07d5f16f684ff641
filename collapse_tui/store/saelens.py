"""An SAE of ours written in SAELens' on-disk layout, and a SAELens or sparsify SAE read back as one of ours.

The layouts followed, read from their sources (never copied):

- SAELens 6.18.0 (``jbloomAus/SAELens`` at commit 91ca16c, October 2025): ``sae_lens/saes/sae.py``
  (``SAEConfig`` and its ``to_dict``, ``SAE.save_model``, ``SAE.load_from_disk``, ``process_sae_in``),
  ``sae_lens/saes/standard_sae.py``, ``topk_sae.py``, ``jumprelu_sae.py``, ``batchtopk_sae.py`` (a BatchTopK
  SAE is saved for inference as a JumpReLU SAE whose every neuron's threshold is the learned one),
  ``sae_lens/constants.py`` (the file names) and ``sae_lens/loading/pretrained_sae_loaders.py``
  (``sae_lens_disk_loader``, ``handle_config_defaulting``: a config without ``sae_lens_version`` is read as a
  pre-6.0 one);
- sparsify 1.3.0 (``EleutherAI/sparsify`` at commit 9d3b136): ``sparsify/sparse_coder.py`` (``save_to_disk``,
  ``load_from_disk``, ``encode``, ``decode``), ``sparsify/fused_encoder.py`` and ``sparsify/config.py``.

A SAELens directory holds ``cfg.json`` (``d_in``, ``d_sae``, ``dtype``, ``device``, ``apply_b_dec_to_input``,
``normalize_activations``, ``reshape_activations``, ``metadata`` with ``sae_lens_version``, ``architecture``,
and ``k`` and ``rescale_acts_by_decoder_norm`` for ``topk``) and ``sae_weights.safetensors`` (``W_enc``
d_in × d_sae, ``b_enc``, ``W_dec`` d_sae × d_in, ``b_dec``, and ``threshold`` for ``jumprelu``). SAELens'
inference encoders, on ``s = x − b_dec`` (``apply_b_dec_to_input``) and ``pre = s @ W_enc + b_enc``:

- ``standard``: ``relu(pre)``;
- ``topk``: the k largest entries of ``pre`` (not of its ReLU), then ReLU'd;
- ``jumprelu``: ``relu(pre) · (pre > threshold)``, the threshold compared with ``pre`` itself;

and the decoder ``codes @ W_dec + b_dec``. A sparsify directory holds ``cfg.json`` (``d_in``, ``k``,
``num_latents`` or ``expansion_factor``, ``activation``) and ``sae.safetensors`` (``encoder.weight``
num_latents × d_in, ``encoder.bias``, ``W_dec`` num_latents × d_in, ``b_dec``): the k largest entries of
``relu((x − b_dec) @ encoder.weightᵀ + encoder.bias)``, decoded as SAELens' are.

Our methods map onto these exactly: ``l1`` is ``standard``; ``topk`` is ``topk`` (ours keeps the k largest
ReLU'd values, every entry tied with the k-th included; SAELens keeps exactly k of the raw ones: the codes
differ only where pre-activations tie exactly at a sample's cut); ``jumprelu`` is ``jumprelu`` with
``threshold = exp(log_threshold)`` (ours compares ``pre > θ`` with θ > 0, so ``pre · H`` equals SAELens'
``relu(pre) · H``); ``batchtopk`` is ``jumprelu`` with its inference threshold for every neuron (ours keeps
ReLU'd values strictly above it, which is SAELens' rule for a threshold ≥ 0).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import keras
import numpy as np
import safetensors.numpy

from collapse_tui.config import FLOAT_TYPES, SPARSITY_METHODS
from collapse_tui.nn import SparseAutoencoder
from collapse_tui.store.files import read_bounded, write_atomic
from collapse_tui.store.layout import SAELENS_CONFIG_FILE, SAELENS_WEIGHTS_FILE, SPARSIFY_WEIGHTS_FILE

# The SAELens release whose layout is written: its loader reads the version to tell a 6.x config from an
# older one.
SAELENS_VERSION = "6.18.0"
# The largest config and weights file read (a weights file is read whole, into memory).
CONFIG_LIMIT = 16 << 20
WEIGHTS_LIMIT = 8 << 30
# SAELens' architecture of each of our methods: the method's own name where SAELens has it (topk, jumprelu);
# L1 is SAELens' "standard" SAE, and BatchTopK is saved for inference as JumpReLU, as SAELens saves its own.
_RENAMED_ARCHITECTURES = {"l1": "standard", "batchtopk": "jumprelu"}
ARCHITECTURE_OF_METHOD = {method: _RENAMED_ARCHITECTURES.get(method, method) for method in SPARSITY_METHODS}
# Our method of each SAELens architecture read.
METHOD_OF_ARCHITECTURE = {"standard": "l1", "topk": "topk", "jumprelu": "jumprelu"}
# SAELens normalisations that are the identity at inference (``expected_average_only_in`` is applied by
# its training code only); the others rescale each input by its own norm, which no SAE of ours does.
IDENTITY_NORMALIZATIONS = ("none", "expected_average_only_in")
# The dtypes SAELens' config may name (its DTYPE_MAP); ours compute in float32 whichever it names.
SAELENS_DTYPES = ("float32", "float64", "float16", "bfloat16", "torch.float32", "torch.float64", "torch.float16",
                  "torch.bfloat16")
# The tensor types read (bfloat16 has no numpy type: safetensors.numpy refuses it).
FLOAT_DTYPES = FLOAT_TYPES


# ---------------------------------------------------------------------- export
def export_saelens(sae: SparseAutoencoder, out_dir: str | Path) -> Path:
    """Write ``sae`` as SAELens 6.18 saves an inference SAE: ``cfg.json`` and ``sae_weights.safetensors``
    in ``out_dir`` (created if needed; each file replaced atomically). Returns ``out_dir``.

    The exported SAE maps raw inputs to our codes and our reconstruction. The input normalisation and the
    bias-floor offset are folded into the weights (exact in real arithmetic; float32 rounding differs by an
    ulp or so): with ``z = (x − mean) / std``,

        W_enc' = W_enc / std (per input row)     b_enc' = b_enc + offset
        b_dec' = mean + std · b_dec              W_dec' = W_dec · std (per input column)

    since ``(z − b_dec) @ W_enc = (x − b_dec') @ W_enc'`` and ``(codes @ W_dec + b_dec) · std + mean =
    codes @ W_dec' + b_dec'``. The decoder's rows are then unit norm only when ``std`` is 1 (SAELens does
    not require it; its ``topk`` config says ``rescale_acts_by_decoder_norm: false``, so the norms play no
    part in its codes). The firing rates, idle counts and optimiser state only steer training: they are
    left behind. Raises ValueError, in one line, for an SAE whose export would not give its codes: a
    non-finite weight or statistic, a non-positive std, or computation below float32.
    """
    if not isinstance(sae, SparseAutoencoder):
        raise ValueError(f"export_saelens needs a SparseAutoencoder, got {type(sae).__name__}")
    if keras.backend.standardize_dtype(sae.compute_dtype) not in ("float32", "float64"):
        raise ValueError(f"the SAE computes in {sae.compute_dtype}; SAELens' float32 weights would not give its codes")
    weights = _folded_weights(sae)
    config = {
        "d_in": sae.input_dim, "d_sae": sae.n_neurons, "dtype": "float32", "device": "cpu",
        "apply_b_dec_to_input": True, "normalize_activations": "none", "reshape_activations": "none",
        "metadata": {"sae_lens_version": SAELENS_VERSION, "sae_lens_training_version": None,
                     "trained_with": "collapse-tui", "sparsity_method": sae.method,
                     "folded_normalization": sae.normalization},
        "architecture": ARCHITECTURE_OF_METHOD[sae.method],
    }
    if sae.method == "topk":
        config.update(k=int(sae.k), rescale_acts_by_decoder_norm=False)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(out_dir / SAELENS_WEIGHTS_FILE, safetensors.numpy.save(weights))
    write_atomic(out_dir / SAELENS_CONFIG_FILE, json.dumps(config, indent=2) + "\n")
    return out_dir


def _host(value) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(value), dtype=np.float64)


def _folded_weights(sae: SparseAutoencoder) -> dict[str, np.ndarray]:
    """SAELens' tensors of ``sae``, normalisation and bias offset folded in (computed in float64)."""
    mean, std = _host(sae.norm_mean), _host(sae.norm_std)
    w_enc, b_enc, w_dec, b_dec = (_host(v) for v in (sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec))
    held = {"norm_mean": mean, "norm_std": std, "W_enc": w_enc, "b_enc": b_enc, "W_dec": w_dec, "b_dec": b_dec}
    if sae.bias_offset is not None:
        held["bias_offset"] = _host(sae.bias_offset)
        b_enc = b_enc + held["bias_offset"]
    threshold = None
    if sae.method == "jumprelu":
        # θ as the backend computes it from log_threshold, in float32: what our codes compare against.
        threshold = _host(keras.ops.exp(keras.ops.cast(sae.jumprelu.log_threshold, "float32")))
    elif sae.method == "batchtopk":
        threshold = np.full(sae.n_neurons, float(_host(sae.topk.threshold)))
    if threshold is not None:
        held["threshold"] = threshold
    for name, value in held.items():
        if not np.isfinite(value).all():
            raise ValueError(f"the SAE's {name} holds non-finite values; there is nothing exact to export")
    if (std <= 0).any():
        raise ValueError("the SAE's norm_std holds values <= 0; its normalisation cannot be folded into weights")
    weights = {"W_enc": w_enc / std[:, None], "b_enc": b_enc, "W_dec": w_dec * std[None, :],
               "b_dec": mean + std * b_dec}
    if threshold is not None:
        weights["threshold"] = threshold
    out = {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in weights.items()}
    for name, value in out.items():
        if not np.isfinite(value).all():
            raise ValueError(f"the SAE's {name} overflows float32 once its normalisation is folded in")
    return out


# ---------------------------------------------------------------------- import
def import_saelens(directory: str | Path) -> SparseAutoencoder:
    """The SAE stored in ``directory``, in SAELens' layout (``cfg.json`` + ``sae_weights.safetensors``:
    architectures ``standard``, ``topk`` and ``jumprelu``, which includes a BatchTopK SAE saved by SAELens)
    or sparsify's (``cfg.json`` + ``sae.safetensors``, Top-k), as a :class:`SparseAutoencoder` (normalisation
    ``none``) whose ``codes(x)`` are that library's codes of ``x`` and whose ``reconstruct(x)`` its output.

    ``standard`` becomes ``l1``, ``topk`` and sparsify ``topk`` (same k), ``jumprelu`` ``jumprelu`` with
    ``log_threshold = log(threshold)`` in float32: θ comes back as ``exp`` of that float32, which may miss
    SAELens' θ by a float32 rounding of the log (a pre-activation within that sliver of θ is the only one
    whose code can differ). A threshold ≤ 0 becomes ``log_threshold = −inf``: θ = 0 exactly, and
    ``pre · H(pre > 0)`` is SAELens' ``relu(pre) · (pre > threshold)`` for every threshold ≤ 0 (as SAELens'
    training JumpReLU turns a stored threshold of 0 into a log threshold of −inf). Folded in, exactly in real
    arithmetic: ``apply_b_dec_to_input: false`` (``b_enc + b_dec @ W_enc``, since ours subtracts ``b_dec``)
    and a ``topk`` SAE's ``rescale_acts_by_decoder_norm`` (as SAELens folds it on saving). The decoder's rows
    keep their norms: they need not be unit norm, and training the imported SAE would project them back to
    unit norm.

    Raises ValueError, in one line naming the file, for what it cannot represent or read: a missing or
    damaged file, a config that is not a JSON object or lacks a key, an unknown architecture (``gated``,
    ``matryoshka_batchtopk``, a transcoder...), a normalisation that rescales each input by its own norm,
    a tensor missing, unexpected, of the wrong shape, not floating point or non-finite.
    """
    directory = Path(directory)
    config_path = directory / SAELENS_CONFIG_FILE
    saelens_weights, sparsify_weights = directory / SAELENS_WEIGHTS_FILE, directory / SPARSIFY_WEIGHTS_FILE
    config = _read_config(config_path)
    if saelens_weights.exists() or not sparsify_weights.exists():
        spec = _saelens_spec(config, config_path)
        spec = _saelens_weights(spec, _read_tensors(saelens_weights), saelens_weights)
        return _build(spec, saelens_weights)
    spec = _sparsify_spec(config, config_path)
    spec = _sparsify_weights(spec, _read_tensors(sparsify_weights), sparsify_weights)
    return _build(spec, sparsify_weights)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(read_bounded(path, CONFIG_LIMIT).decode("utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: missing (an SAE directory holds its config there)") from None
    except (OSError, ValueError, RecursionError) as error:
        raise ValueError(f"{path}: unreadable as JSON ({_one_line(error)})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: not a JSON object (got {type(config).__name__})")
    return config


def _read_tensors(path: Path) -> dict[str, np.ndarray]:
    try:
        tensors = safetensors.numpy.load(read_bounded(path, WEIGHTS_LIMIT))
    except FileNotFoundError:
        raise ValueError(f"{path}: missing (an SAE directory holds its weights there)") from None
    except KeyError as error:  # a tensor type numpy has no type for (bfloat16)
        raise ValueError(f"{path}: holds tensors of type {error.args[0] if error.args else '?'}, which numpy "
                         "cannot read; convert them to float32") from None
    except Exception as error:  # safetensors' own error type (SafetensorError) and the OS's
        raise ValueError(f"{path}: not a readable safetensors file ({_one_line(error)})") from None
    for name, value in tensors.items():
        if value.dtype.name not in FLOAT_DTYPES:
            raise ValueError(f"{path}: tensor {name!r} is {value.dtype.name}, not floating point")
    return tensors


def _whole(config: dict, key: str, path: Path, default: Any = None, low: int = 1) -> int:
    value = config.get(key, default)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        shown = "missing" if key not in config and default is None else repr(value)
        raise ValueError(f"{path}: {key} must be a whole number >= {low}, got {shown}")
    return value


def _flag(config: dict, key: str, path: Path, default: bool) -> bool:
    value = config.get(key, default)
    if not isinstance(value, bool):
        raise ValueError(f"{path}: {key} must be true or false, got {value!r}")
    return value


def _written_by_saelens_6(config: dict) -> bool:
    """Whether the config says SAELens 6 or later wrote it (earlier ones may leave keys to defaults)."""
    metadata = config.get("metadata")
    version = config.get("sae_lens_version")
    if not version and isinstance(metadata, dict):
        version = metadata.get("sae_lens_version")
    major = str(version).split(".")[0] if version else ""
    return major.isdigit() and int(major) >= 6


def _saelens_spec(config: dict, path: Path) -> dict[str, Any]:
    """What the SAELens config says: sizes, our method, k, and the switches folded in on reading."""
    if "architecture" not in config and _written_by_saelens_6(config):
        raise ValueError(f"{path}: architecture is missing (SAELens 6 configs name it)")
    architecture = config.get("architecture", "standard")
    # Configs written before SAELens 6 name a Top-k SAE by its activation (handle_pre_6_0_config).
    activation = config.get("activation_fn", config.get("activation_fn_str", "relu"))
    kwargs = config.get("activation_fn_kwargs")
    if architecture == "standard" and activation == "topk" and isinstance(kwargs, dict) and "k" in kwargs:
        architecture, config = "topk", {**config, "k": kwargs["k"]}
    elif activation not in ("relu", "topk"):
        raise ValueError(f"{path}: activation {activation!r} is not one an SAE of ours has (relu, topk)")
    if not isinstance(architecture, str) or architecture not in METHOD_OF_ARCHITECTURE:
        raise ValueError(f"{path}: architecture {architecture!r} cannot be read as an SAE of ours "
                         f"(readable: {', '.join(METHOD_OF_ARCHITECTURE)})")
    normalize = config.get("normalize_activations", "none")
    if normalize is None or isinstance(normalize, bool):  # configs before SAELens 6 said true or false
        normalize = "expected_average_only_in" if normalize else "none"
    if normalize not in IDENTITY_NORMALIZATIONS:
        raise ValueError(f"{path}: normalize_activations {normalize!r} rescales each input by its own norm, "
                         "which no SAE of ours does")
    if config.get("dtype", "float32") not in SAELENS_DTYPES:
        raise ValueError(f"{path}: dtype {config.get('dtype')!r} is not one SAELens reads")
    if _flag(config, "finetuning_scaling_factor", path, False):
        raise ValueError(f"{path}: finetuning_scaling_factor (a per-neuron rescaling) has no equivalent here")
    spec = {"method": METHOD_OF_ARCHITECTURE[architecture], "d_in": _whole(config, "d_in", path),
            "d_sae": _whole(config, "d_sae", path), "b_dec_in": _flag(config, "apply_b_dec_to_input", path, True),
            "rescale": False, "k": None}
    if architecture == "topk":
        spec["k"] = _whole(config, "k", path)
        spec["rescale"] = _flag(config, "rescale_acts_by_decoder_norm", path, False)
        if spec["k"] > spec["d_sae"]:
            raise ValueError(f"{path}: k ({spec['k']}) is larger than d_sae ({spec['d_sae']})")
    return spec


def _check_tensors(tensors: dict, expected: dict[str, tuple[int, ...]], path: Path,
                   ignorable: dict[str, float] | None = None) -> dict[str, np.ndarray]:
    """The expected tensors of ``tensors`` (by name and shape) as float64, each finite; a tensor missing,
    of another shape, non-finite or not expected is refused (``ignorable``: a tensor that may be present
    when it holds only this value)."""
    for name, value in tensors.items():
        if name in expected:
            continue
        if ignorable and name in ignorable and np.all(value == ignorable[name]):
            continue
        raise ValueError(f"{path}: unexpected tensor {name!r} (this architecture has {', '.join(expected)})")
    out = {}
    for name, shape in expected.items():
        if name not in tensors:
            raise ValueError(f"{path}: tensor {name!r} is missing")
        value = tensors[name]
        if tuple(value.shape) != shape:
            raise ValueError(f"{path}: tensor {name!r} has shape {tuple(value.shape)}, the config says {shape}")
        value = value.astype(np.float64)
        if not np.isfinite(value).all():
            raise ValueError(f"{path}: tensor {name!r} holds NaN or infinite values")
        out[name] = value
    return out


def _saelens_weights(spec: dict, tensors: dict, path: Path) -> dict[str, Any]:
    d, m = spec["d_in"], spec["d_sae"]
    expected = {"W_enc": (d, m), "b_enc": (m,), "W_dec": (m, d), "b_dec": (d,)}
    if spec["method"] == "jumprelu":
        expected["threshold"] = (m,)
    # Older SAELens files carry a scaling_factor of ones, which its loader drops.
    found = _check_tensors(tensors, expected, path, ignorable={"scaling_factor": 1.0})
    if not spec["b_dec_in"]:  # pre = x @ W_enc + b_enc = (x − b_dec) @ W_enc + (b_enc + b_dec @ W_enc)
        found["b_enc"] = found["b_enc"] + found["b_dec"] @ found["W_enc"]
    if spec["rescale"]:  # its Top-k ranks pre · |W_dec row| and decodes codes / |W_dec row|
        norms = np.linalg.norm(found["W_dec"], axis=1)
        if (norms == 0).any():
            raise ValueError(f"{path}: a W_dec row is zero, and rescale_acts_by_decoder_norm divides by its norm")
        found["W_enc"], found["b_enc"] = found["W_enc"] * norms[None, :], found["b_enc"] * norms
        found["W_dec"] = found["W_dec"] / norms[:, None]
    return {**spec, **found}


def _sparsify_spec(config: dict, path: Path) -> dict[str, Any]:
    activation = config.get("activation", "topk")
    if activation != "topk":
        raise ValueError(f"{path}: sparsify activation {activation!r} cannot be read (readable: topk)")
    for switch, meaning in (("transcode", "a transcoder predicts another layer"),
                            ("skip_connection", "a skip connection adds x @ W_skip"),
                            ("signed", "signed codes keep negative values")):
        if _flag(config, switch, path, False):
            raise ValueError(f"{path}: {switch} is on: {meaning}, which no SAE of ours does")
    d_in = _whole(config, "d_in", path)
    d_sae = _whole(config, "num_latents", path, default=0, low=0)
    if d_sae == 0:
        d_sae = d_in * _whole(config, "expansion_factor", path, default=32)
    k = _whole(config, "k", path, default=32)
    if k > d_sae:
        raise ValueError(f"{path}: k ({k}) is larger than the {d_sae} latents")
    return {"method": "topk", "d_in": d_in, "d_sae": d_sae, "k": k}


def _sparsify_weights(spec: dict, tensors: dict, path: Path) -> dict[str, Any]:
    d, m = spec["d_in"], spec["d_sae"]
    found = _check_tensors(tensors, {"encoder.weight": (m, d), "encoder.bias": (m,), "W_dec": (m, d),
                                     "b_dec": (d,)}, path)
    return {**spec, "W_enc": found["encoder.weight"].T, "b_enc": found["encoder.bias"], "W_dec": found["W_dec"],
            "b_dec": found["b_dec"]}


def _log_threshold(threshold: np.ndarray) -> np.ndarray:
    """Our log_threshold of SAELens' thresholds: log θ, and −inf (θ = 0) for θ ≤ 0 (see import_saelens)."""
    positive = threshold > 0
    out = np.full(threshold.shape, -np.inf)
    out[positive] = np.log(threshold[positive])
    return out


def _build(spec: dict[str, Any], path: Path) -> SparseAutoencoder:
    weights = {name: np.asarray(spec[name], dtype=np.float32) for name in ("W_enc", "b_enc", "W_dec", "b_dec")}
    for name, value in weights.items():
        if not np.isfinite(value).all():
            raise ValueError(f"{path}: {name} overflows float32")
    method = spec["method"]
    try:
        sae = SparseAutoencoder(spec["d_in"], n_neurons=spec["d_sae"], method=method,
                                k=spec["k"] if spec["k"] is not None else min(50, spec["d_sae"]),
                                normalization="none", seed=0)
    except ValueError as error:
        raise ValueError(f"{path}: {_one_line(error)}") from None
    for name, value in weights.items():
        getattr(sae, name).assign(value)
    if method == "jumprelu":
        sae.jumprelu.log_threshold.assign(_log_threshold(spec["threshold"]).astype(np.float32))
    return sae
