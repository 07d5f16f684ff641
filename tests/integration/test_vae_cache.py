"""A VAE cached in the models directory is checked before a run uses it: a file under its key that is not
that VAE (another model, another width, another precision, a damaged file) is set aside with one warning and
the VAE trained again, to the same results as a clean run; the right VAE is reused, not retrained."""

from __future__ import annotations

import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collapse_tui import events as ev
from collapse_tui.config import validate
from collapse_tui.engine.checkpoint import Checkpoint, write_checkpoint_file
from collapse_tui.engine.runner import Engine
from collapse_tui.store import layout
from tests.helpers import tiny_config

# Models are built, saved, loaded and trained: CI runs this module on every backend.
pytestmark = pytest.mark.backend

COMPARED = ("dead_fraction", "l0", "explained_variance", "mse", "mig")


class Recorder(list):
    def __call__(self, event):
        self.append(event)

    def vae_epochs(self) -> int:
        return sum(isinstance(e, ev.EpochEnd) and e.phase == "vae" for e in self)

    def warnings(self) -> list[str]:
        return [e.text for e in self if isinstance(e, ev.Message) and e.level == "warning"]


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """A clean run's config, its VAE's key and file bytes, and its final results."""
    tmp = tmp_path_factory.mktemp("clean")
    data = tiny_config(tmp, sae={"epochs": 1}, eval={"every": 0})
    result = Engine().run(validate(data))
    assert result.status == "ok", result.summary.get("reason")
    (saved,) = Path(data["models_dir"]).glob("vae-*.keras")
    return data, layout.vae_model_key(saved), saved.read_bytes(), result.summary["final"]


def run_with(tmp_path: Path, clean, put) -> tuple[Recorder, object, Path]:
    """A run of the clean config in a models directory of its own, after ``put(path, key)`` wrote there."""
    data, key, _, _ = clean
    models = tmp_path / "models"
    models.mkdir()
    path = layout.vae_model(models, key)
    put(path, key)
    rec = Recorder()
    result = Engine().run(validate({**data, "runs_dir": str(tmp_path / "runs"), "models_dir": str(models)}), [rec])
    return rec, result, path


def same_results(a: dict, b: dict) -> None:
    for name in COMPARED:
        assert b.get(name) == pytest.approx(a.get(name), rel=1e-5, abs=1e-9), name


def another_class(path: Path, key: str) -> None:
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.save(path)


def a_vae(path: Path, clean, **changes) -> None:
    """The clean VAE's class and settings, ``changes`` applied, saved (untrained) at ``path``."""
    from collapse_tui.nn import ConvVAE

    source = path.parent / "source.keras"
    source.write_bytes(clean[2])
    right = keras.saving.load_model(source, compile=False)
    source.unlink()
    settings = dict(image_shape=right.image_shape, latent_dim=right.latent_dim, hidden_units=right.hidden_units,
                    beta=right.beta, input_scale=right.input_scale, seed=1)
    ConvVAE(**{**settings, **changes}).save(path)


FOREIGN = {
    "another Keras class": lambda clean: another_class,
    "another encoder width": lambda clean: lambda path, key: a_vae(path, clean, hidden_units=clean_width(clean) // 2),
    "another latent size": lambda clean: lambda path, key: a_vae(path, clean, latent_dim=3),
    "truncated": lambda clean: lambda path, key: path.write_bytes(clean[2][: len(clean[2]) // 2]),
    "random bytes": lambda clean: lambda path, key: path.write_bytes(np.random.RandomState(0).bytes(4096)),
}


def clean_width(clean) -> int:
    return validate(clean[0]).vae.hidden_units


@pytest.mark.parametrize("kind", list(FOREIGN))
def test_a_file_under_a_vaes_key_that_is_not_that_vae_is_set_aside_and_the_vae_retrained(tmp_path, clean, kind):
    rec, result, path = run_with(tmp_path, clean, FOREIGN[kind](clean))
    assert result.status == "ok", result.summary.get("reason")
    assert rec.vae_epochs() == 1, "the VAE is trained again"
    about = [w for w in rec.warnings() if path.name in w]
    assert len(about) == 1 and "\n" not in about[0] and "set aside" in about[0], rec.warnings()
    aside = layout.set_aside(path)
    assert aside.name in about[0] and aside.is_file()
    fresh = keras.saving.load_model(path, compile=False, safe_mode=True)
    assert type(fresh).__name__ == "ConvVAE" and fresh.hidden_units == clean_width(clean)
    same_results(clean[3], result.summary["final"])


def test_a_vae_trained_in_another_precision_is_set_aside(tmp_path, clean):
    def float64_vae(path, key):
        policy = keras.config.dtype_policy()
        keras.config.set_floatx("float64")
        keras.config.set_dtype_policy("float64")
        try:
            a_vae(path, clean)
        finally:
            keras.config.set_floatx("float32")
            keras.config.set_dtype_policy(policy)

    rec, result, path = run_with(tmp_path, clean, float64_vae)
    assert result.status == "ok" and rec.vae_epochs() == 1
    (warning,) = [w for w in rec.warnings() if path.name in w]
    assert "float64" in warning and "float32" in warning
    same_results(clean[3], result.summary["final"])


def test_the_right_vae_is_reused_not_retrained(tmp_path, clean):
    rec, result, path = run_with(tmp_path, clean, lambda path, key: path.write_bytes(clean[2]))
    assert result.status == "ok" and rec.vae_epochs() == 0
    assert not rec.warnings() and not layout.set_aside(path).exists()
    assert any(isinstance(e, ev.Message) and e.text.startswith("vae: loaded") for e in rec)
    same_results(clean[3], result.summary["final"])


def checkpoint_of(key: str) -> Checkpoint:
    return Checkpoint(epoch=1, weights=[np.zeros(3, np.float32)], optimizer={}, rng={}, state={"vae_key": key})


CHECKPOINTS = {
    "truncated": lambda path, key: path.write_bytes(write_checkpoint_file(path, checkpoint_of(key)).read_bytes()[:200]),
    "random bytes": lambda path, key: path.write_bytes(np.random.RandomState(1).bytes(2048)),
    "another VAE's": lambda path, key: write_checkpoint_file(path, checkpoint_of(key)),
}


@pytest.mark.parametrize("kind", list(CHECKPOINTS))
def test_a_vae_checkpoint_that_cannot_continue_it_is_set_aside(tmp_path, clean, kind):
    def put(path, key):
        CHECKPOINTS[kind](layout.vae_checkpoint(path.parent, key), key)

    rec, result, path = run_with(tmp_path, clean, put)
    checkpoint = layout.vae_checkpoint(path.parent, clean[1])
    assert result.status == "ok" and rec.vae_epochs() == 1
    about = [w for w in rec.warnings() if checkpoint.name in w]
    assert len(about) == 1 and "\n" not in about[0], rec.warnings()
    aside = layout.set_aside(checkpoint)
    assert aside.name in about[0] and aside.is_file() and not checkpoint.exists()
    assert about[0].count(str(checkpoint)) == 1  # named once
    same_results(clean[3], result.summary["final"])


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.floats(0.0, 0.999), cut=st.booleans(), xor=st.integers(1, 255))
def test_a_cached_vae_cut_or_altered_anywhere_is_a_problem_not_an_exception(tmp_path_factory, clean, where, cut, xor):
    from collapse_tui.engine.vae_cache import ExpectedVAE, load_checked

    good = clean[2]
    at = int(len(good) * where)
    damaged = good[:at] if cut else good[:at] + bytes([good[at] ^ xor]) + good[at + 1:]
    directory = tmp_path_factory.mktemp("damaged")
    path = directory / "vae.keras"
    path.write_bytes(damaged)
    cfg = validate(clean[0])
    vae, problem = load_checked(path, ExpectedVAE.of(cfg.vae, (64, 64, 1), 1.0, "float32"))
    if problem is None:  # a byte no reader looks at (a timestamp, padding): the model is whole
        assert not cut and type(vae).__name__ == "ConvVAE" and vae.hidden_units == cfg.vae.hidden_units
    else:
        assert vae is None and "\n" not in problem and len(problem) < 400
    shutil.rmtree(directory)
