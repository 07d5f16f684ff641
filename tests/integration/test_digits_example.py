"""The digits example: its script trains a small classifier on scikit-learn's bundled handwritten digits and
writes the hidden layer's activations, with the digit as the factor, in a file the tool opens; the saved
classifier loads safely and gives the same activations on the images it writes for the model route; the
study's two configs (file route, model route) resolve to the same twelve runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np

from collapse_tui import config
from collapse_tui.data.activations import open_activations
from collapse_tui.data.image_file import open_images

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "digits"


def test_the_script_writes_the_hidden_layer_of_every_digit_and_the_study_resolves(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, str(EXAMPLE / "train_classifier.py"), "--epochs", "2", "--out-dir", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    npz, model_path = out / "digits_hidden.npz", out / "digits_classifier.keras"
    assert str(npz) in done.stdout and str(model_path) in done.stdout and "accuracy" in done.stdout

    acts = open_activations(npz)
    assert (acts.n, acts.dim) == (1797, 128)
    assert acts.factor_names == ("digit",) and acts.factors.shape == (1797, 1)
    assert sorted(np.unique(acts.factors).tolist()) == list(range(10)) and acts.factors_num_values == [10]

    # The images the model route applies the saved classifier to: every digit, as uint8, in load_digits' order,
    # and the classifier's hidden layer on them is what the file holds.
    image_set = open_images(out / "digits_images.npz")
    assert image_set.n == 1797 and image_set.image_shape == (8, 8, 1) and image_set.factor_names == ("digit",)
    np.testing.assert_array_equal(image_set.factors, acts.factors)
    model = keras.saving.load_model(model_path, safe_mode=True)
    hidden = keras.Model(model.inputs, model.get_layer("hidden").output)
    shown = image_set.images(np.arange(5)).astype(np.float32) * np.float32(image_set.input_scale)
    again = keras.ops.convert_to_numpy(hidden([shown]))
    np.testing.assert_allclose(again, acts.rows(np.arange(5)), rtol=1e-5, atol=1e-5)

    # The study: Top-k at four k, three seeds each, on the 128 hidden units, its rows within the file's.
    runs = config.load(EXAMPLE / "digits_topk.yaml")
    assert len(runs) == 12
    assert sorted({(run.sae.k, run.seed) for run, _ in runs}) == [(k, s) for k in (4, 8, 16, 32) for s in (0, 1, 2)]
    for run, _ in runs:
        assert run.data.dataset == "activations" and run.data.path == "digits_hidden.npz"
        assert run.sae.method == "topk" and run.sae.n_neurons == 512
        assert run.data.n_train + run.eval.n_samples <= acts.n
    # The same study by the model route: the same runs, on the classifier's layer "hidden" of the images.
    by_model = config.load(EXAMPLE / "digits_topk_model.yaml")
    assert [(r.seed, r.sae.k) for r, _ in by_model] == [(r.seed, r.sae.k) for r, _ in runs]
    for run, _ in by_model:
        assert run.data.dataset == "images" and run.data.path == "digits_images.npz"
        assert run.sae.model == "digits_classifier.keras" and run.sae.source == "hidden"
    for study in ("digits_topk.yaml", "digits_topk_model.yaml"):
        dry = subprocess.run([sys.executable, "-m", "collapse_tui", "--batch", str(EXAMPLE / study), "--dry-run"],
                             cwd=out, env=env, capture_output=True, text=True, timeout=120)
        assert dry.returncode == 0, dry.stderr[-2000:]
