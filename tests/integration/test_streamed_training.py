"""Training rows left in their activations file and read as training uses them (``data.streaming``): the
same run, weight for weight, as with the rows held in memory, on .npy and .h5 files; ``auto`` streams only
large training sets of formats that can be read at random; what cannot run on streamed rows is refused in
one line."""

from __future__ import annotations

import numpy as np
import pytest

import collapse_tui.config as config_module
from collapse_tui.config import ConfigError, validate
from collapse_tui.data.activations import write_activations
from collapse_tui.engine.runner import Engine
from collapse_tui import store
from tests.helpers import tiny_config

# The outcome depends on the Keras backend: CI runs this module on every backend.
pytestmark = pytest.mark.backend


def activations(n: int = 260, d: int = 10, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) + 0.5).astype(np.float32)


def config(tmp_path, path, streaming, **sae):
    settings = {"n_neurons": 24, "k": 3, "epochs": 2, "batch_size": 32, "normalization": "standardise", **sae}
    return validate(tiny_config(tmp_path, name=f"run-{streaming}",
                                data={"dataset": "activations", "path": str(path), "n_train": 200,
                                      "streaming": streaming},
                                eval={"n_samples": 60}, sae=settings))


def weights(result) -> list[np.ndarray]:
    import keras

    sae = keras.saving.load_model(result.run_dir / store.SAE_FILE, compile=False)
    return [keras.ops.convert_to_numpy(w) for w in sae.weights]


@pytest.mark.parametrize("suffix", [".npy", ".h5"])
def test_a_streamed_run_is_the_run_held_in_memory(tmp_path, suffix):
    path = write_activations(tmp_path / f"acts{suffix}", activations())
    events = []
    streamed = Engine().run(config(tmp_path, path, "always"), [events.append])
    held = Engine().run(config(tmp_path, path, "never"))
    assert streamed.status == held.status == "ok", streamed.summary.get("reason")
    assert any("training rows stay in" in getattr(e, "text", "") for e in events)
    for a, b in zip(weights(streamed), weights(held)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for key in ("dead_fraction", "l0", "explained_variance"):
        assert streamed.summary["final"][key] == pytest.approx(held.summary["final"][key], abs=1e-5), key


def test_a_streamed_bank_of_two_seeds_trains_each_as_alone(tmp_path):
    path = write_activations(tmp_path / "acts.npy", activations())
    bank = [config(tmp_path, path, "always").model_copy(update={"seed": s, "name": f"s{s}"}) for s in (1, 2)]
    together = Engine().run_bank(bank)
    alone = Engine().run(config(tmp_path, path, "never").model_copy(update={"seed": 2, "name": "alone"}))
    assert [r.status for r in together] == ["ok", "ok"] and alone.status == "ok"
    for a, b in zip(weights(together[1]), weights(alone)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_auto_streams_only_large_training_sets_of_files_read_at_random(tmp_path, monkeypatch):
    acts = activations()
    npy = write_activations(tmp_path / "acts.npy", acts)
    npz = write_activations(tmp_path / "acts.npz", acts)

    def streams(path) -> bool:
        events = []
        result = Engine().run(config(tmp_path, path, "auto", epochs=1), [events.append])
        assert result.status == "ok", result.summary.get("reason")
        return any("training rows stay in" in getattr(e, "text", "") for e in events)

    assert not streams(npy)  # 200 rows of 10 floats: far under the limit
    monkeypatch.setattr(config_module, "STREAMING_AUTO_BYTES", 200 * 10 * 4 - 1)
    assert streams(npy)
    assert not streams(npz)  # a zip member is read forwards only: held in memory whatever its size


@pytest.mark.parametrize("settings, message", [
    ({"data": {"path": "acts.npz"}}, "data.streaming: always reads rows at random a batch at a time, which only "
                                     ".npy, .h5, .hdf5 files allow"),
    ({"data": {"dataset": "dsprites", "path": None}}, "data.streaming: always reads an activations file's rows"),
    ({"data_parallel": True}, "data.streaming: always feeds the bank batch by batch from the host"),
])
def test_settings_streaming_cannot_serve_are_refused(tmp_path, settings, message):
    raw = tiny_config(tmp_path, data={"dataset": "activations", "path": "acts.npy", "n_train": 200,
                                      "streaming": "always"})
    for key, value in settings.items():
        raw[key].update(value) if isinstance(value, dict) else raw.__setitem__(key, value)
    with pytest.raises(ConfigError) as err:
        validate(raw)
    assert any(message in line for line in err.value.errors), err.value.errors


@pytest.mark.parametrize("remedies, message", [
    ({"resample_epochs": [1]}, "sae.remedies.resample_epochs: resampling scores every training row at once"),
    ({"data_init": True}, "sae.remedies.data_init draws the decoder from all training rows at once"),
])
def test_remedies_that_need_every_row_at_once_fail_the_run_in_one_line(tmp_path, remedies, message):
    path = write_activations(tmp_path / "acts.npy", activations())
    result = Engine().run(config(tmp_path, path, "always", remedies=remedies))
    assert result.status == "failed"
    assert message in result.summary["reason"] and "\n" not in result.summary["reason"]


def test_the_geometric_median_start_is_the_same_streamed(tmp_path):
    path = write_activations(tmp_path / "acts.npy", activations())
    runs = [Engine().run(config(tmp_path, path, mode, epochs=1, remedies={"geometric_median_init": True}))
            for mode in ("always", "never")]
    assert [r.status for r in runs] == ["ok", "ok"]
    for a, b in zip(weights(runs[0]), weights(runs[1])):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
