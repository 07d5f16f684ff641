"""Train a small classifier on scikit-learn's bundled handwritten digits and write what collapse-tui needs
to train sparse autoencoders on its hidden layer, by either route: the layer's activations on every image
(the file route), or the images themselves beside the saved model (the model route).

The 1,797 8×8 images ship inside scikit-learn (nothing is downloaded). Their pixels (counts 0..16) are
stored as uint8 0..255 and shown to the network as floats in [0, 1], as collapse-tui shows images to a
model; an Input(8, 8, 1) → Flatten → Dense(128, relu, "hidden") → Dense(10, softmax) network trains on a
stratified 80% split and is scored on the other 20%. Written to --out-dir:

* digits_classifier.keras: the trained classifier (keras.saving.load_model reads it, safe_mode on);
* digits_images.npz: ``images`` (1,797 × 8 × 8 × 1 uint8), ``factors`` (1,797 × 1, the digit) and
  ``factor_names`` (["digit"]), the labelled image set the model route applies the classifier to;
* digits_hidden.npz: ``activations`` (1,797 × 128, the hidden layer's outputs on all images in
  load_digits' order), with the same ``factors`` and ``factor_names``, for the file route.

Runs on any Keras 3 backend (KERAS_BACKEND=tensorflow, jax or torch).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported (through Keras)

from collapse_tui.engine.environment import quiet_native_logs  # noqa: E402

# TensorFlow's C++ start-up lines come whatever the level says: held back (shown if something fails).
with quiet_native_logs():
    import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from collapse_tui.data.activations import write_activations  # noqa: E402
from collapse_tui.data.image_file import write_images  # noqa: E402

HERE = Path(__file__).resolve().parent
MODEL_FILE = "digits_classifier.keras"
ACTIVATIONS_FILE = "digits_hidden.npz"
IMAGES_FILE = "digits_images.npz"
HIDDEN_UNITS = 128
PIXEL_MAX = 16.0  # load_digits' pixels are counts 0..16 of a 4×4 block's set pixels


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Train a small Keras classifier on scikit-learn's bundled 8×8 handwritten digits (no "
                    f"download) and write its {HIDDEN_UNITS}-unit hidden layer's activations on all 1,797 images, "
                    f"with the digit as the factor, to {ACTIVATIONS_FILE}, and the model and the images to "
                    f"{MODEL_FILE} and {IMAGES_FILE}, for `collapse-tui --batch digits_topk.yaml` (or "
                    "digits_topk_model.yaml).")
    parser.add_argument("--epochs", type=int, default=30,
                        help="training epochs of the classifier (default: 30, about 97%% held-out accuracy)")
    parser.add_argument("--out-dir", type=Path, default=HERE,
                        help="directory the three files are written to (default: this script's directory)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the train/test split, the initial weights and the batch order (default: 0)")
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error(f"--epochs: {args.epochs} must be at least 1")
    return args


def build_classifier() -> keras.Model:
    inputs = keras.Input((8, 8, 1), name="pixels")
    flat = keras.layers.Flatten(name="flatten")(inputs)
    hidden = keras.layers.Dense(HIDDEN_UNITS, activation="relu", name="hidden")(flat)
    outputs = keras.layers.Dense(10, activation="softmax", name="digit")(hidden)
    model = keras.Model(inputs, outputs, name="digits_classifier")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    return model


def main(argv=None) -> int:
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    digits = load_digits()
    # Stored as uint8 and shown as floats in [0, 1] exactly as collapse-tui shows a model its images, so
    # both routes give the SAE the same inputs.
    pixels = np.round(digits.images[..., None] * (255.0 / PIXEL_MAX)).astype(np.uint8)
    images = pixels.astype(np.float32) * np.float32(1.0 / 255.0)
    labels = digits.target.astype(np.int32)
    x_train, x_test, y_train, y_test = train_test_split(images, labels, test_size=0.2, stratify=labels,
                                                        random_state=args.seed)

    with quiet_native_logs():  # the first step's device lines, as at import
        model = build_classifier()
        model.fit(x_train, y_train, epochs=args.epochs, batch_size=32, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"held-out accuracy: {accuracy:.4f} ({len(y_test)} images, {args.epochs} epochs)")

    args.out_dir.mkdir(parents=True, exist_ok=True)
    model_path = args.out_dir / MODEL_FILE
    model.save(model_path)
    # Every image, in load_digits' order: the SAE study draws its own training and held-out rows.
    hidden = keras.Model(model.input, model.get_layer("hidden").output)
    activations = keras.ops.convert_to_numpy(hidden.predict(images, batch_size=256, verbose=0)).astype(np.float32)
    acts_path = write_activations(args.out_dir / ACTIVATIONS_FILE, activations, labels[:, None], ["digit"])
    images_path = write_images(args.out_dir / IMAGES_FILE, pixels, labels[:, None], ["digit"])
    silent = int((activations.max(axis=0) <= 0).sum())  # ReLU units at 0 on every image: dead in the classifier
    print(f"hidden layer: {activations.shape[0]} × {activations.shape[1]}, {silent} unit(s) zero on every image")
    print(f"wrote {model_path}")
    print(f"wrote {acts_path}")
    print(f"wrote {images_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
