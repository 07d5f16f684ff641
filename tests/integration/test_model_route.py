"""Runs on a model of the user's (``sae.model``): a saved ``.keras`` model applied to a labelled image set,
its named layer's output the SAE's input. The activations are the layer's (the same as computing them by
hand), a feature map is flattened, the file route on those activations gives the same run, a changed model
file refuses a resume, and every model that cannot give its layer is one line before any run starts."""

from __future__ import annotations

import zipfile

import keras
import numpy as np
import pytest

from collapse_tui import store
from collapse_tui import events as ev
from collapse_tui.config import ConfigError, validate
from collapse_tui.data.activations import write_activations
from collapse_tui.data.image_file import write_images
from collapse_tui.engine.preflight import preflight
from collapse_tui.engine.runner import Engine
from tests.helpers import tiny_config

# The outcome depends on the Keras backend: CI runs this module on every backend.
pytestmark = pytest.mark.backend


def labelled_images(n: int = 300, seed: int = 0):
    """n 8×8×1 uint8 images whose brightness pattern is set by two factors (3 and 4 values)."""
    rng = np.random.default_rng(seed)
    factors = np.stack([rng.integers(0, 3, n), rng.integers(0, 4, n)], axis=1)
    images = rng.integers(0, 40, (n, 8, 8, 1))
    for i, (a, b) in enumerate(factors):
        images[i, 2 * a:2 * a + 3, :, 0] += 150
        images[i, :, 2 * b:2 * b + 2, 0] += 60
    return np.clip(images, 0, 255).astype(np.uint8), factors


def save_model(path, conv: bool = False):
    inputs = keras.Input((8, 8, 1), name="pixels")
    x = keras.layers.Conv2D(2, 3, strides=2, padding="same", activation="relu", name="features")(inputs) if conv \
        else inputs
    x = keras.layers.Flatten(name="flatten")(x)
    hidden = keras.layers.Dense(16, activation="relu", name="hidden")(x)
    outputs = keras.layers.Dense(3, name="head")(hidden)
    model = keras.Model(inputs, outputs)
    model.save(path)
    return model


def config(tmp_path, images, model, source="hidden", **sections):
    sae = {"model": str(model), "source": source, "n_neurons": 32, "k": 4, "epochs": 2}
    sae.update(sections.pop("sae", {}))
    return tiny_config(tmp_path, data={"dataset": "images", "path": str(images), "n_train": 200},
                       eval={"n_samples": 80}, sae=sae, **sections)


@pytest.fixture
def files(tmp_path):
    images, factors = labelled_images()
    image_path = write_images(tmp_path / "images.npz", images, factors, ["row", "column"])
    model_path = tmp_path / "model.keras"
    save_model(model_path)
    return image_path, model_path, images, factors


def test_a_run_on_a_models_layer_reads_that_layer_and_measures_the_factors(tmp_path, files):
    image_path, model_path, images, _ = files
    events = []
    engine = Engine()
    result = engine.run(validate(config(tmp_path, image_path, model_path)), [events.append])
    assert result.status == "ok", result.summary.get("reason")
    phases = [e.phase for e in events if isinstance(e, ev.PhaseStarted)]
    assert "vae" not in phases and "codes" in phases and "sae" in phases
    assert any("not trained: the SAE reads layer hidden of model.keras" in getattr(e, "text", "") for e in events)
    final = result.summary["final"]
    assert final["n_factors"] == 2 and isinstance(final["mig"], float) and isinstance(final["probe_acc"], float)
    source = store.load_run(result.run_dir).config["data_source"]
    assert source["dataset"] == "images" and source["layer"] == "hidden" and len(source["model_sha256"]) == 64
    assert len(source["sha256"]) == 64 and source["rows"] == 300

    # The SAE's inputs are the layer's outputs on the images shown as floats in [0, 1]: by hand, the same.
    (train, evaluation), = list(engine.model._codes.values())
    eval_rows = store.read_neurons(result.run_dir)["eval_indices"]
    model = keras.saving.load_model(model_path)
    hidden = keras.Model(model.inputs, model.get_layer("hidden").output)
    by_hand = keras.ops.convert_to_numpy(hidden([images[eval_rows].astype(np.float32) / 255.0]))
    assert train.shape == (200, 16) and evaluation.shape == (80, 16)
    np.testing.assert_allclose(evaluation, by_hand, rtol=1e-5, atol=1e-5)


def test_the_file_route_on_the_same_activations_gives_the_same_run(tmp_path, files):
    image_path, model_path, images, factors = files
    by_model = Engine().run(validate(config(tmp_path, image_path, model_path, name="by-model")))
    model = keras.saving.load_model(model_path)
    hidden = keras.Model(model.inputs, model.get_layer("hidden").output)
    acts = keras.ops.convert_to_numpy(hidden([images.astype(np.float32) * np.float32(1 / 255)]))
    acts_path = write_activations(tmp_path / "acts.npz", acts, factors, ["row", "column"])
    file_cfg = tiny_config(tmp_path, name="by-file", data={"dataset": "activations", "path": str(acts_path),
                                                           "n_train": 200},
                           eval={"n_samples": 80}, sae={"n_neurons": 32, "k": 4, "epochs": 2})
    by_file = Engine().run(validate(file_cfg))
    assert by_model.status == by_file.status == "ok"
    a, b = by_model.summary["final"], by_file.summary["final"]
    for key in ("dead_fraction", "l0", "probe_acc", "specialized"):
        assert a[key] == pytest.approx(b[key], abs=1e-3), key
    assert a["explained_variance"] == pytest.approx(b["explained_variance"], abs=1e-3)


def test_a_feature_map_is_flattened_and_said_so(tmp_path, files):
    image_path, _, _, _ = files
    conv_path = tmp_path / "conv.keras"
    save_model(conv_path, conv=True)
    events = []
    engine = Engine()
    result = engine.run(validate(config(tmp_path, image_path, conv_path, source="features")), [events.append])
    assert result.status == "ok", result.summary.get("reason")
    (train, _), = list(engine.model._codes.values())
    assert train.shape == (200, 4 * 4 * 2)
    assert any("flattened to 32 features" in getattr(e, "text", "") for e in events)


def test_a_model_changed_since_the_run_began_refuses_its_resume(tmp_path, files):
    image_path, model_path, _, _ = files
    first = Engine().run(validate(config(tmp_path, image_path, model_path)))
    assert first.status == "ok"
    recorded = store.load_run(first.run_dir).config["data_source"]
    save_model(model_path)  # new weights, same file name
    from collapse_tui.engine.active_run import ActiveRun
    from collapse_tui.engine.model_phase import ModelError

    s = ActiveRun(config=validate(config(tmp_path, image_path, model_path)), run_dir=first.run_dir,
                  emit=lambda e: None, started=0.0, writer=None)
    s.recorded_source = recorded
    engine = Engine()
    data = engine.data.load(s.config, s)
    with pytest.raises(ModelError, match="model.keras has changed since the run began"):
        engine.model.codes(s.config, data, s)


def lambda_model(path):
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Lambda(lambda t: t * 2.0, name="doubled")(inputs)
    keras.Model(inputs, keras.layers.Flatten(name="flatten")(x)).save(path)


@pytest.mark.parametrize("case, expected", [
    ("missing", "sae.model: .*missing.keras: no such file"),
    ("unknown layer", "sae.source: model.keras has no layer 'nowhere'; its layers: pixels, flatten, hidden, head"),
    ("lambda", "sae.model: cannot load lambda.keras in safe mode: "),
    ("truncated", "sae.model: cannot load truncated.keras in safe mode: "),
    ("not a zip", "sae.model: cannot load garbage.keras in safe mode: "),
])
def test_a_model_that_cannot_give_its_layer_is_one_line_before_any_run(tmp_path, files, case, expected):
    image_path, model_path, _, _ = files
    source = "hidden"
    if case == "missing":
        model_path = tmp_path / "missing.keras"
    elif case == "unknown layer":
        source = "nowhere"
    elif case == "lambda":
        model_path = tmp_path / "lambda.keras"
        lambda_model(model_path)
        source = "doubled"
    elif case == "truncated":
        data = model_path.read_bytes()
        model_path = tmp_path / "truncated.keras"
        model_path.write_bytes(data[: len(data) // 2])
    else:
        model_path = tmp_path / "garbage.keras"
        model_path.write_bytes(b"not a keras file at all" * 10)
    cfg = validate(config(tmp_path, image_path, model_path, source=source))
    problems = preflight([cfg])
    assert len(problems) == 1 and "\n" not in problems[0]
    assert __import__("re").match(expected, problems[0]), problems[0]
    # Started anyway (another front end), the run fails with the same line and writes no weights.
    result = Engine().run(cfg)
    assert result.status == "failed" and problems[0] in result.summary["reason"]
    assert zipfile.is_zipfile(model_path) or case in ("missing", "truncated", "not a zip")


def test_images_of_another_shape_are_refused_in_one_line(tmp_path, files):
    _, model_path, _, _ = files
    images, factors = labelled_images()
    other = write_images(tmp_path / "wide.npz", np.repeat(images, 2, axis=2), factors)
    result = Engine().run(validate(config(tmp_path, other, model_path)))
    assert result.status == "failed"
    assert "model.keras takes inputs of shape (8, 8, 1); the images are (8, 16, 1)" in result.summary["reason"]


@pytest.mark.parametrize("changes, message", [
    ({"sae": {"model": None, "source": "encoder_hidden"}}, "sae.model: data.dataset images feeds a model of your own"),
    ({"sae": {"model": "net.h5"}}, "is not a .keras file"),
    ({"sae": {"model": None, "source": "hidden"}}, "sae.source: 'hidden' is not a representation of the VAE"),
    ({"data": {"dataset": "activations", "path": "acts.npz"}}, "sae.model: the activations file is already"),
    ({"data": {"path": "images.h5"}}, "data.path: data.dataset images reads a labelled image set"),
])
def test_settings_of_the_model_route_that_cannot_work_are_refused(tmp_path, changes, message):
    cfg = config(tmp_path, tmp_path / "images.npz", tmp_path / "model.keras")
    for section, values in changes.items():
        cfg[section].update(values)
    if changes.get("sae", {}).get("source") == "hidden":
        cfg["data"] = {"dataset": "dsprites", "n_train": 200}
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        validate(cfg)


def test_the_neuron_inspector_draws_a_runs_images_from_its_image_set(tmp_path, files):
    from collapse_tui.tui.screens.neurons import open_run_dataset

    image_path, model_path, images, _ = files
    result = Engine().run(validate(config(tmp_path, image_path, model_path, sae={"epochs": 1})))
    assert result.status == "ok"
    rows = store.read_neurons(result.run_dir)["eval_indices"][:3]
    np.testing.assert_array_equal(open_run_dataset(result.run_dir).images(rows), images[rows])


def test_a_model_applied_to_dsprites_sees_its_images_in_zero_one(tmp_path):
    inputs = keras.Input((64, 64, 1))
    x = keras.layers.Conv2D(4, 8, strides=8, activation="relu", name="conv")(inputs)
    x = keras.layers.Flatten()(x)
    keras.Model(inputs, keras.layers.Dense(12, activation="relu", name="hidden")(x)).save(tmp_path / "net.keras")
    cfg = tiny_config(tmp_path, data={"dataset": "dsprites", "source": "procedural", "n_train": 96},
                      sae={"model": str(tmp_path / "net.keras"), "source": "hidden", "n_neurons": 24, "k": 4})
    engine = Engine()
    result = engine.run(validate(cfg))
    assert result.status == "ok", result.summary.get("reason")
    assert result.summary["final"]["n_factors"] == 5
    assert not list((tmp_path / "models").glob("vae-*"))  # no VAE trained or saved
    (train, evaluation), = list(engine.model._codes.values())
    data = engine.data.load(validate(cfg), _Quiet())
    model = keras.saving.load_model(tmp_path / "net.keras")
    hidden = keras.Model(model.inputs, model.get_layer("hidden").output)
    assert data.input_scale == 1.0 and set(np.unique(data.eval_images)) <= {0, 1}  # dSprites' pixels as they are
    by_hand = keras.ops.convert_to_numpy(hidden([data.eval_images.astype(np.float32)]))
    np.testing.assert_allclose(evaluation, by_hand, rtol=1e-5, atol=1e-5)


class _Quiet:
    """A run's stand-in for loading data outside a run: it hears nothing."""

    recorded_source: dict = {}

    def emit(self, event) -> None:
        pass
