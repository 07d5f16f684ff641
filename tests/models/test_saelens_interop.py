"""An SAE of ours written in SAELens' layout means to SAELens what it means to us, and a SAELens or
sparsify SAE read back gives that library's codes; damaged or foreign files are refused in one line."""

import json
import shutil
import tempfile
from pathlib import Path

import keras
import numpy as np
import pytest
import safetensors.numpy
from hypothesis import given, settings
from hypothesis import strategies as st

from collapse_tui.nn import SparseAutoencoder
from collapse_tui.store.layout import SAELENS_CONFIG_FILE, SAELENS_WEIGHTS_FILE, SPARSIFY_WEIGHTS_FILE
from collapse_tui.store.saelens import export_saelens, import_saelens

# Codes and reconstructions go through the backend's arithmetic: CI runs this module on every backend.
pytestmark = pytest.mark.backend

METHODS = ("l1", "topk", "batchtopk", "jumprelu")
NORMALIZATIONS = ("none", "unit_norm", "standardise")
D, M, K = 8, 32, 4


def data(n, seed):
    """Inputs far from centred and of unequal scales, so that each normalisation changes them."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, D)) * np.linspace(0.5, 3.0, D) + np.linspace(-2.0, 2.0, D)).astype("float32")


TRAIN, HELD_OUT = data(64, 0), data(48, 1)
_TRAINED: dict = {}


def trained(method, normalization):
    """An SAE of ``method`` fitted 2 epochs under ``normalization``; with a normalisation, the bias floor
    is on too (its offset is folded into the export's b_enc)."""
    key = (method, normalization)
    if key not in _TRAINED:
        floor = {} if normalization == "none" else {"bias_floor": 0.9, "bias_step": 0.05, "bias_window": 2}
        sae = SparseAutoencoder(D, n_neurons=M, method=method, k=K, l1_coefficient=1e-2, normalization=normalization,
                                seed=3, jumprelu_threshold=0.05, **floor)
        sae.adapt(TRAIN)
        sae.compile(optimizer=keras.optimizers.Adam(1e-2))
        sae.fit(TRAIN, epochs=2, batch_size=16, verbose=0)
        if floor:
            assert np.abs(keras.ops.convert_to_numpy(sae.bias_offset)).max() > 0, "the offset never moved"
        if method == "batchtopk":
            assert float(keras.ops.convert_to_numpy(sae.topk.threshold)) > 0, "the threshold was never learned"
        _TRAINED[key] = (sae, sae.codes(HELD_OUT), sae.reconstruct(HELD_OUT))
    return _TRAINED[key]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    """``(sae, directory, codes, reconstruction)`` of each method and normalisation, exported once."""
    root, made = tmp_path_factory.mktemp("exports"), {}

    def get(method, normalization):
        if (method, normalization) not in made:
            sae, codes, reconstruction = trained(method, normalization)
            made[method, normalization] = (sae, export_saelens(sae, root / f"{method}-{normalization}"), codes,
                                           reconstruction)
        return made[method, normalization]
    return get


# ---------------------------------------------------------------------- SAELens' arithmetic, by hand
def read_saelens(directory):
    config = json.loads((Path(directory) / SAELENS_CONFIG_FILE).read_text())
    return config, safetensors.numpy.load_file(str(Path(directory) / SAELENS_WEIGHTS_FILE))


def saelens_forward(config, w, x):
    """SAELens 6.18's inference encode and decode (standard_sae.py, topk_sae.py, jumprelu_sae.py), in float64."""
    w = {name: value.astype(np.float64) for name, value in w.items()}
    x = np.asarray(x, np.float64) - (w["b_dec"] if config.get("apply_b_dec_to_input", True) else 0.0)
    pre = x @ w["W_enc"] + w["b_enc"]
    architecture = config["architecture"]
    if architecture == "topk" and config.get("rescale_acts_by_decoder_norm"):
        pre = pre * np.linalg.norm(w["W_dec"], axis=1)
    if architecture == "standard":
        codes = np.maximum(pre, 0)
    elif architecture == "topk":  # the k largest pre-activations (not of their ReLU), then ReLU
        top = np.argsort(-pre, axis=1, kind="stable")[:, :config["k"]]
        codes = np.zeros_like(pre)
        np.put_along_axis(codes, top, np.maximum(np.take_along_axis(pre, top, axis=1), 0), axis=1)
    else:
        assert architecture == "jumprelu"
        codes = np.maximum(pre, 0) * (pre > w["threshold"])
    decoded = codes / np.linalg.norm(w["W_dec"], axis=1) if config.get("rescale_acts_by_decoder_norm") else codes
    return codes, decoded @ w["W_dec"] + w["b_dec"]


def sparsify_forward(config, w, x):
    """sparsify's SparseCoder.encode (fused_encoder: ReLU, then top-k) and decode, in float64."""
    w = {name: value.astype(np.float64) for name, value in w.items()}
    pre = np.maximum((np.asarray(x, np.float64) - w["b_dec"]) @ w["encoder.weight"].T + w["encoder.bias"], 0)
    top = np.argsort(-pre, axis=1, kind="stable")[:, :config["k"]]
    codes = np.zeros_like(pre)
    np.put_along_axis(codes, top, np.take_along_axis(pre, top, axis=1), axis=1)
    return codes, codes @ w["W_dec"] + w["b_dec"]


def assert_same_codes(actual, expected, scale=1.0):
    """Equal to float32 rounding (relative 1e-6 of the codes' scale), and non-zero at the same places."""
    np.testing.assert_array_equal(actual != 0, expected != 0)
    np.testing.assert_allclose(actual, expected, rtol=2e-6, atol=2e-6 * scale)


# ---------------------------------------------------------------------- export, then import
@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("method", METHODS)
def test_an_exported_sae_imports_with_the_same_codes_and_reconstruction(exports, method, normalization):
    _, directory, codes, reconstruction = exports(method, normalization)
    back = import_saelens(directory)
    assert back.normalization == "none" and back.n_neurons == M and back.input_dim == D
    assert back.method == {"l1": "l1", "topk": "topk", "batchtopk": "jumprelu", "jumprelu": "jumprelu"}[method]
    if method == "topk":
        assert back.k == K
    scale = float(np.abs(codes).max())
    assert scale > 0 and (codes != 0).any(axis=1).mean() > 0.5, "the trained SAE should fire on the held-out inputs"
    assert_same_codes(back.codes(HELD_OUT), codes, scale)
    np.testing.assert_allclose(back.reconstruct(HELD_OUT), reconstruction, rtol=1e-5,
                               atol=1e-5 * float(np.abs(HELD_OUT).max()))


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("method", METHODS)
def test_saelens_arithmetic_on_the_exported_files_gives_our_codes(exports, method, normalization):
    sae, directory, codes, reconstruction = exports(method, normalization)
    config, w = read_saelens(directory)
    assert config["architecture"] == {"l1": "standard", "topk": "topk"}.get(method, "jumprelu")
    assert (config["d_in"], config["d_sae"], config["dtype"]) == (D, M, "float32")
    assert config["apply_b_dec_to_input"] is True and config["normalize_activations"] == "none"
    assert config["metadata"]["sae_lens_version"].split(".")[0] == "6"
    thresholded = method in ("jumprelu", "batchtopk")
    assert sorted(w) == sorted(["W_enc", "b_enc", "W_dec", "b_dec"] + (["threshold"] if thresholded else []))
    assert all(value.dtype == np.float32 for value in w.values())
    assert w["W_enc"].shape == (D, M) and w["W_dec"].shape == (M, D)
    if method == "topk":
        assert config["k"] == K and config["rescale_acts_by_decoder_norm"] is False
    if method == "batchtopk":  # every neuron's threshold is the learned inference threshold
        np.testing.assert_array_equal(w["threshold"], float(keras.ops.convert_to_numpy(sae.topk.threshold)))
    expected_codes, expected_reconstruction = saelens_forward(config, w, HELD_OUT)
    assert_same_codes(codes, expected_codes, float(np.abs(codes).max()))
    np.testing.assert_allclose(reconstruction, expected_reconstruction, rtol=1e-5,
                               atol=1e-5 * float(np.abs(HELD_OUT).max()))


def test_a_normalisation_other_than_none_is_folded_and_unit_norm_rows_scale(exports):
    sae, directory, _, _ = exports("l1", "standardise")
    _, w = read_saelens(directory)
    std = keras.ops.convert_to_numpy(sae.norm_std)
    np.testing.assert_allclose(w["W_dec"], sae.decoder_directions() * std, rtol=1e-6)
    assert not np.allclose(np.linalg.norm(w["W_dec"], axis=1), 1.0)  # folding breaks unit norm, as said


# ---------------------------------------------------------------------- directories SAELens or sparsify wrote
def write_dir(directory, config, tensors, weights_file=SAELENS_WEIGHTS_FILE):
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / SAELENS_CONFIG_FILE).write_text(json.dumps(config))
    safetensors.numpy.save_file({k: np.ascontiguousarray(v, np.float32) for k, v in tensors.items()},
                                str(directory / weights_file))
    return directory


def saelens_config(architecture, **extra):
    return {"d_in": D, "d_sae": M, "dtype": "float32", "device": "cpu", "apply_b_dec_to_input": True,
            "normalize_activations": "none", "reshape_activations": "none",
            "metadata": {"sae_lens_version": "6.18.0"}, "architecture": architecture, **extra}


def random_weights(seed, decoder_norms=1.0):
    rng = np.random.default_rng(seed)
    w_dec = rng.normal(size=(M, D))
    w_dec *= np.asarray(decoder_norms).reshape(-1, 1) / np.linalg.norm(w_dec, axis=1, keepdims=True)
    return {"W_enc": rng.normal(size=(D, M)) * 0.5, "b_enc": rng.normal(size=M) * 0.3, "W_dec": w_dec,
            "b_dec": rng.normal(size=D)}


@pytest.mark.parametrize("architecture, extra", [
    ("standard", {}),
    ("topk", {"k": 5, "rescale_acts_by_decoder_norm": False}),
    ("topk", {"k": 3, "rescale_acts_by_decoder_norm": True, "apply_b_dec_to_input": False}),
    ("jumprelu", {}),
])
def test_a_saelens_directory_imports_with_saelens_codes(tmp_path, architecture, extra):
    tensors = random_weights(5, decoder_norms=np.linspace(0.3, 2.0, M))  # SAELens does not need unit-norm rows
    if architecture == "jumprelu":
        tensors["threshold"] = np.linspace(0.05, 1.5, M)
    config = saelens_config(architecture, **extra)
    directory = write_dir(tmp_path / "sae", config, tensors)
    config, w = read_saelens(directory)
    codes, reconstruction = saelens_forward(config, w, HELD_OUT)
    sae = import_saelens(directory)
    assert_same_codes(sae.codes(HELD_OUT), codes, float(np.abs(codes).max()))
    np.testing.assert_allclose(sae.reconstruct(HELD_OUT), reconstruction, rtol=1e-5, atol=1e-4)


def test_jumprelu_thresholds_at_or_below_zero_import_as_a_plain_relu_exactly(tmp_path):
    tensors = random_weights(6)
    threshold = np.linspace(0.05, 1.0, M)
    threshold[:12] = [0.0, -0.5, -3.0, 0.0, -1e-30, -1e30, 0.0, -0.1, -2.0, 0.0, -7.0, -0.01]
    tensors["threshold"] = threshold
    directory = write_dir(tmp_path / "sae", saelens_config("jumprelu"), tensors)
    config, w = read_saelens(directory)
    x = np.concatenate([HELD_OUT, data(200, 9)])
    codes, _ = saelens_forward(config, w, x)
    sae = import_saelens(directory)
    log_threshold = keras.ops.convert_to_numpy(sae.jumprelu.log_threshold)
    assert np.isneginf(log_threshold[:12]).all() and np.isfinite(log_threshold[12:]).all()
    # Below zero SAELens' relu(pre) · (pre > threshold) is relu(pre) itself, pre-activations between such a
    # threshold and 0 included (they give 0): the inputs hold some.
    pre = sae.pre_activations(x)
    assert ((pre[:, :12] < 0) & (pre[:, :12] > threshold[:12])).any()
    assert_same_codes(sae.codes(x), codes, float(np.abs(codes).max()))


def test_a_sparsify_directory_imports_with_sparsify_codes(tmp_path):
    rng = np.random.default_rng(7)
    tensors = {"encoder.weight": rng.normal(size=(M, D)) * 0.5, "encoder.bias": rng.normal(size=M) * 0.3,
               "W_dec": rng.normal(size=(M, D)) * 0.4, "b_dec": rng.normal(size=D)}
    config = {"activation": "topk", "expansion_factor": 32, "normalize_decoder": True, "num_latents": M, "k": 6,
              "multi_topk": False, "skip_connection": False, "transcode": False, "d_in": D}
    directory = write_dir(tmp_path / "sparsify", config, tensors, weights_file=SPARSIFY_WEIGHTS_FILE)
    w = safetensors.numpy.load_file(str(directory / SPARSIFY_WEIGHTS_FILE))
    codes, reconstruction = sparsify_forward(config, w, HELD_OUT)
    sae = import_saelens(directory)
    assert (sae.method, sae.k, sae.n_neurons) == ("topk", 6, M)
    assert_same_codes(sae.codes(HELD_OUT), codes, float(np.abs(codes).max()))
    np.testing.assert_allclose(sae.reconstruct(HELD_OUT), reconstruction, rtol=1e-5, atol=1e-4)


# ---------------------------------------------------------------------- refusals
def refusal(directory, file_name):
    """The one-line ValueError importing ``directory`` raises; it names the file."""
    with pytest.raises(ValueError) as caught:
        import_saelens(directory)
    message = str(caught.value)
    assert "\n" not in message and str(Path(directory) / file_name) in message, message
    return message


@pytest.fixture
def good(tmp_path):
    """A readable SAELens JumpReLU directory and its pieces."""
    tensors = {**random_weights(8), "threshold": np.full(M, 0.2)}
    return write_dir(tmp_path / "sae", saelens_config("jumprelu"), tensors), tensors


def test_refusals_name_the_file_in_one_line(good):
    directory, tensors = good
    weights, config_file = directory / SAELENS_WEIGHTS_FILE, directory / SAELENS_CONFIG_FILE
    config = json.loads(config_file.read_text())
    original = weights.read_bytes()

    weights.write_bytes(original[: len(original) // 2])
    assert "safetensors" in refusal(directory, SAELENS_WEIGHTS_FILE)
    weights.write_bytes(original)

    nan = {**tensors, "W_dec": np.where(np.arange(M * D).reshape(M, D) == 5, np.nan, tensors["W_dec"])}
    write_dir(directory, config, nan)
    assert "'W_dec'" in refusal(directory, SAELENS_WEIGHTS_FILE)
    write_dir(directory, config, {**tensors, "b_enc": tensors["b_enc"][:-1]})
    assert "shape" in refusal(directory, SAELENS_WEIGHTS_FILE)
    write_dir(directory, {**config, "d_sae": M + 1}, tensors)
    assert "shape" in refusal(directory, SAELENS_WEIGHTS_FILE)
    write_dir(directory, config, {k: v for k, v in tensors.items() if k != "threshold"})
    assert "'threshold'" in refusal(directory, SAELENS_WEIGHTS_FILE)
    write_dir(directory, config, tensors)

    for bad, expect in [({**config, "architecture": "gated"}, "gated"),
                        ({**config, "architecture": "wavelet"}, "wavelet"),
                        ({k: v for k, v in config.items() if k != "d_in"}, "d_in"),
                        ({k: v for k, v in config.items() if k != "architecture"}, "architecture"),
                        ({**config, "normalize_activations": "layer_norm"}, "layer_norm"),
                        ({**config, "architecture": "topk", "k": M + 1}, "k")]:
        config_file.write_text(json.dumps(bad))
        assert expect in refusal(directory, SAELENS_CONFIG_FILE)
    for text in ("[1, 2]", '"cfg"', "{not json", "", "[" * 100_000):
        config_file.write_text(text)
        refusal(directory, SAELENS_CONFIG_FILE)
    config_file.unlink()
    assert "missing" in refusal(directory, SAELENS_CONFIG_FILE)


def test_sparsify_refusals_name_the_file(tmp_path):
    tensors = {"encoder.weight": np.ones((M, D)), "encoder.bias": np.zeros(M), "W_dec": np.ones((M, D)),
               "b_dec": np.zeros(D)}
    config = {"activation": "topk", "num_latents": M, "k": 4, "d_in": D}
    directory = write_dir(tmp_path / "s", {**config, "transcode": True}, tensors, weights_file=SPARSIFY_WEIGHTS_FILE)
    assert "transcode" in refusal(directory, SAELENS_CONFIG_FILE)
    write_dir(directory, {**config, "activation": "groupmax"}, tensors, weights_file=SPARSIFY_WEIGHTS_FILE)
    assert "groupmax" in refusal(directory, SAELENS_CONFIG_FILE)
    write_dir(directory, config, {k: v for k, v in tensors.items() if k != "encoder.bias"},
              weights_file=SPARSIFY_WEIGHTS_FILE)
    assert "'encoder.bias'" in refusal(directory, SPARSIFY_WEIGHTS_FILE)


def test_export_refuses_what_it_cannot_write_exactly(tmp_path):
    sae = SparseAutoencoder(D, n_neurons=M, method="l1", normalization="standardise", seed=0)
    sae.adapt(TRAIN)
    sae.norm_std.assign(np.zeros(D, np.float32))
    with pytest.raises(ValueError, match="norm_std"):
        export_saelens(sae, tmp_path / "zero-std")
    sae.adapt(TRAIN)
    sae.b_enc.assign(np.full(M, np.nan, np.float32))
    with pytest.raises(ValueError, match="b_enc"):
        export_saelens(sae, tmp_path / "nan")
    assert not (tmp_path / "zero-std" / SAELENS_WEIGHTS_FILE).exists()


# ---------------------------------------------------------------------- damaged files
@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A Top-k SAE exported once, and read back."""
    sae = SparseAutoencoder(D, n_neurons=M, method="topk", k=K, normalization="standardise", seed=4)
    sae.adapt(TRAIN)
    directory = export_saelens(sae, tmp_path_factory.mktemp("reference"))
    return directory, import_saelens(directory)


def parameters(sae):
    names = ["W_enc", "b_enc", "W_dec", "b_dec"]
    return {name: keras.ops.convert_to_numpy(getattr(sae, name)) for name in names}


@settings(max_examples=30, deadline=None)
@given(which=st.sampled_from([SAELENS_CONFIG_FILE, SAELENS_WEIGHTS_FILE]), truncate=st.booleans(),
       where=st.floats(0.0, 1.0, exclude_max=True), mask=st.integers(1, 255))
def test_a_damaged_file_gives_the_same_sae_or_one_valueerror_line(reference, which, truncate, where, mask):
    source, original = reference
    with tempfile.TemporaryDirectory() as scratch:
        directory = Path(shutil.copytree(source, Path(scratch) / "sae"))
        path = directory / which
        raw = bytearray(path.read_bytes())
        at = int(where * len(raw))
        header_end = 8 + int.from_bytes(raw[:8], "little") if which == SAELENS_WEIGHTS_FILE else len(raw)
        k_value = raw.find(b'"k": ') + len(b'"k": ') if which == SAELENS_CONFIG_FILE else -1
        if truncate:
            raw = raw[:at]
        else:
            raw[at] ^= mask
        path.write_bytes(bytes(raw))
        try:
            sae = import_saelens(directory)
        except ValueError as error:
            assert "\n" not in str(error) and str(path) in str(error)
            return
    same, changed = parameters(original), parameters(sae)
    differing = sum(int((same[name] != changed[name]).sum()) for name in same)
    if not truncate and at >= header_end:  # a weight's bytes: that one weight changes (safetensors has no checksum)
        assert differing <= 1 and sae.method == "topk" and sae.k == K
        return
    assert differing == 0 and sae.method == original.method
    # A config byte may change k's digit (or put one before it), and the file then says another k; anything
    # else reads the same.
    assert sae.k == K or (not truncate and k_value - 1 <= at <= k_value)
