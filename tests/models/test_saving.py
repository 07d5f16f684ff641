"""Models saved in the Keras format load back with equal outputs, on this backend and on the others."""

import importlib.util
import io
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from collapse_tui.nn import ConvVAE, SparseAutoencoder

# The outcome depends on the Keras backend: CI runs this module on every backend.
pytestmark = pytest.mark.backend

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ("tensorflow", "jax", "torch")
MODELS = ("vae", "sae_topk", "sae_l1")


def outputs(name, model, inputs):
    """Everything a model's users read from it, as numpy arrays."""
    if name == "vae":
        x = inputs["images"]
        return {
            "hidden": model.representation(x, source="encoder_hidden"),
            "mean": model.representation(x, source="latent_mean"),
            "logits": model.reconstruct_logits(x),
        }
    x = inputs["codes"]
    return {"codes": model.codes(x), "reconstruction": model.reconstruct(x)}


def build_models():
    rng = np.random.RandomState(0)
    images = (rng.rand(4, 64, 64, 1) < 0.3).astype("uint8")
    codes = (rng.normal(size=(32, 8)) * np.linspace(0.5, 2.0, 8) + 1.0).astype("float32")
    # Training the VAE is left out (its transposed convolutions compile slowly on CPU); the SAEs are
    # trained a step so that an optimiser's state is saved with them too.
    vae = ConvVAE(seed=0, beta=4.0, input_scale=1.0)
    topk = SparseAutoencoder(8, n_neurons=24, method="topk", k=5, normalization="standardise", seed=1)
    l1 = SparseAutoencoder(8, n_neurons=24, method="l1", l1_coefficient=0.02, normalization="centre", seed=2)
    for sae in (topk, l1):
        sae.adapt(codes)
        sae.compile(optimizer=keras.optimizers.Adam(1e-2))
        sae.fit(codes, epochs=1, batch_size=16, verbose=0)
    topk.set_sparsity(3)
    l1.set_sparsity(0.05)
    return {"vae": vae, "sae_topk": topk, "sae_l1": l1}, {"images": images, "codes": codes}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The three models saved under this backend, their inputs and their outputs, on disk."""
    directory = tmp_path_factory.mktemp("saved")
    models, inputs = build_models()
    np.savez(directory / "inputs.npz", **inputs)
    for name, model in models.items():
        # Outputs first: the host helpers' inference views then exist when the model is saved.
        np.savez(directory / f"{name}.npz", **outputs(name, model, inputs))
        model.save(directory / f"{name}.keras")
    return directory, models, inputs


def expected(directory, name):
    with np.load(directory / f"{name}.npz") as f:
        return dict(f)


def weight_groups(path):
    with zipfile.ZipFile(path) as archive, h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r") as f:
        names = []
        f.visit(names.append)
        return names


def test_saved_weights_hold_the_models_state_only(saved):
    directory, _, _ = saved
    # norm_mean, norm_std, b_dec, W_enc, b_enc, W_dec, idle_steps (+ the L1 coefficient); no inference views.
    for name, n_vars in (("sae_topk", 7), ("sae_l1", 8)):
        groups = weight_groups(directory / f"{name}.keras")
        assert not [g for g in groups if "inference" in g], groups
        assert len([g for g in groups if g.startswith("vars/")]) == n_vars, groups
    assert not [g for g in weight_groups(directory / "vae.keras") if "inference" in g]


def test_round_trip_on_this_backend(saved):
    directory, models, inputs = saved
    for name in MODELS:
        loaded = keras.saving.load_model(directory / f"{name}.keras")
        assert type(loaded) is type(models[name])
        assert loaded.get_config() == models[name].get_config()
        for key, value in outputs(name, loaded, inputs).items():
            np.testing.assert_allclose(value, expected(directory, name)[key], rtol=1e-6, atol=1e-6,
                                       err_msg=f"{name}: {key}")
    topk = keras.saving.load_model(directory / "sae_topk.keras")
    assert topk.sparsity == 3 and topk.normalization == "standardise"
    l1 = keras.saving.load_model(directory / "sae_l1.keras", compile=False)
    assert l1.sparsity == pytest.approx(0.05)
    assert float(keras.ops.convert_to_numpy(l1.l1_coefficient_variable.value)) == pytest.approx(0.05)
    # A loaded model trains on.
    history = topk.fit(inputs["codes"], epochs=1, batch_size=16, verbose=0).history
    assert np.isfinite(history["loss"][0]) and history["l0"][0] <= 3


_LOADER = textwrap.dedent("""
    import json, sys
    import numpy as np
    import keras
    import collapse_tui.nn  # registers the classes
    sys.path.insert(0, sys.argv[2])
    from tests.models.test_saving import MODELS, outputs
    directory = sys.argv[1]
    with np.load(f"{directory}/inputs.npz") as f:
        inputs = dict(f)
    result = {}
    for name in MODELS:
        model = keras.saving.load_model(f"{directory}/{name}.keras")
        np.savez(f"{directory}/{name}.{keras.backend.backend()}.npz", **outputs(name, model, inputs))
        result[name] = model.sparsity if hasattr(model, "sparsity") else None
    print("RESULT " + json.dumps(result))
""")


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != keras.backend.backend()])
def test_models_load_under_another_backend(saved, backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    directory, models, _ = saved
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", _LOADER, str(directory), str(ROOT)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")][-1]
    sparsity = json.loads(line[len("RESULT "):])
    assert sparsity["sae_topk"] == 3 and sparsity["sae_l1"] == pytest.approx(0.05)
    for name in MODELS:
        with np.load(directory / f"{name}.{backend}.npz") as f:
            theirs = dict(f)
        ours = expected(directory, name)
        assert set(theirs) == set(ours)
        for key in ours:
            np.testing.assert_allclose(theirs[key], ours[key], rtol=1e-5, atol=1e-5,
                                       err_msg=f"{name}: {key} under {backend}")


def _rewrite_config(path, edit):
    """Rewrite the model config inside the ``.keras`` archive at ``path`` with ``edit(config)``."""
    with zipfile.ZipFile(path) as archive:
        entries = {name: archive.read(name) for name in archive.namelist()}
    saved = json.loads(entries["config.json"])
    edit(saved["config"])
    entries["config.json"] = json.dumps(saved).encode()
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


@pytest.mark.parametrize("tied", [False, True])
def test_a_file_saved_before_the_projection_and_median_switches_loads_as_it_behaved(tmp_path, tied):
    # Before project_decoder_grads and geometric_median_init existed, tied_init meant the tied
    # initialisation and the decoder-gradient projection, and auxk_k was always a number (256 by default).
    codes = (np.random.RandomState(3).normal(size=(32, 8)) + 1.0).astype("float32")
    sae = SparseAutoencoder(8, n_neurons=24, method="topk", k=5, auxk=True, auxk_k=256, dead_steps=1,
                            tied_init=tied, project_decoder_grads=tied, seed=4)
    sae.adapt(codes)
    sae.compile(optimizer=keras.optimizers.Adam(1e-2))
    sae.fit(codes, epochs=1, batch_size=16, verbose=0)
    path = tmp_path / "old.keras"
    sae.save(path)

    def old_config(config):
        del config["project_decoder_grads"], config["geometric_median_init"]

    _rewrite_config(path, old_config)
    # The weights are those of before: no variable was added, so Keras' variable count still matches.
    assert len([g for g in weight_groups(path) if g.startswith("vars/")]) == 7
    loaded = keras.saving.load_model(path)
    assert (loaded.tied_init, loaded.project_decoder_grads, loaded.geometric_median_init) == (tied, tied, False)
    assert loaded.auxk_k == 256 and loaded.aux_topk.k == 24  # an explicit auxk_k is kept (capped at n_neurons)
    assert loaded.get_config() == sae.get_config()
    np.testing.assert_allclose(loaded.reconstruct(codes), sae.reconstruct(codes), rtol=1e-6, atol=1e-6)
    history = loaded.fit(codes, epochs=1, batch_size=16, verbose=0).history
    assert np.isfinite(history["loss"][0]) and np.isfinite(history["auxk_loss"][0])
