"""The convolutional VAE (the disentanglement_lib architecture) whose representation the SAE reads."""

from __future__ import annotations

import numbers
from typing import Any, Sequence

import keras
import numpy as np
from keras import ops

from collapse_tui.config import REPRESENTATION_SOURCES, VAEConfig
from collapse_tui.nn import checks
from collapse_tui.nn.layers import inference_view

# The entry of encode()'s dict that each of the schema's representation sources reads.
_SOURCE_KEYS = {"encoder_hidden": "hidden", "latent_mean": "mean"}


@keras.saving.register_keras_serializable(package="collapse_tui")
class ConvVAE(keras.Model):
    """A (beta-)VAE with the convolutional encoder and decoder of disentanglement_lib.

    Encoder: Conv2D 32 (4x4, stride 2), 32 (4x4, s2), 64 (2x2, s2), 64 (2x2, s2), ReLU, same padding
    -> Flatten -> Dense ``hidden_units`` ReLU (the "encoder hidden" layer) -> Dense mean and Dense
    log-variance of ``latent_dim`` latents. Decoder: Dense ``hidden_units`` ReLU -> Dense
    (H/16 * W/16 * 64) ReLU -> reshape -> Conv2DTranspose 64, 32, 32 (ReLU), ``channels`` (4x4, s2,
    same) -> per-pixel Bernoulli logits.

    Inputs are images straight from the dataset (uint8 is fine: data can stay uint8 in memory); the
    model casts them to float32 and multiplies by ``input_scale`` (1 for 0/1 images, 1/255 for 0..255)
    inside ``call``. ``call(x, training)`` returns ``{"logits", "mean", "log_var"}``: during training
    the decoder reads a sample ``mean + exp(log_var / 2) * eps`` (eps from the model's seed
    generator), otherwise the mean.

    Loss (through ``compute_loss``, so ``fit(x)`` with no targets works on every backend)::

        reconstruction = mean over the batch of sum over pixels of sigmoid cross-entropy(logits, x * scale)
        kl             = mean over the batch of sum over latents of KL(N(mean, var) || N(0, 1))
        loss           = reconstruction + beta * kl

    Logged metrics: ``loss``, ``reconstruction``, ``kl``.

    Args:
        image_shape: (height, width, channels); height and width multiples of 16.
        latent_dim: number of latents.
        hidden_units: width of the encoder hidden layer and of the decoder's first Dense layer.
        beta: weight of the KL term (>= 0).
        input_scale: factor turning stored pixel values into [0, 1] intensities (> 0).
        seed: seed of the weight initialisation and of the sampling (None: unseeded).
    """

    def __init__(self, image_shape: Sequence[int] = (64, 64, 1), latent_dim: int = 10,
                 hidden_units: int = 256, beta: float = 1.0, input_scale: float = 1.0,
                 seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        shape = tuple(image_shape) if isinstance(image_shape, (list, tuple)) else None
        if (shape is None or len(shape) != 3
                or not all(isinstance(d, numbers.Integral) and not isinstance(d, bool) and d >= 1 for d in shape)
                or shape[0] % 16 or shape[1] % 16):
            raise ValueError(
                "image_shape must be (height, width, channels) with height and width positive multiples "
                f"of 16 (four stride-2 convolutions), got {image_shape!r}"
            )
        self.image_shape = tuple(int(d) for d in shape)
        self.latent_dim = checks.whole_number("latent_dim", latent_dim)
        self.hidden_units = checks.whole_number("hidden_units", hidden_units)
        self.beta = checks.number("beta", beta, 0)
        self.input_scale = checks.number("input_scale", input_scale, 0, above=True)
        self.seed = checks.seed(seed)

        counter = iter(range(1_000))

        def init():
            # One fixed seed per layer: reproducible from ``seed`` alone, different across layers.
            return keras.initializers.GlorotUniform(seed=None if self.seed is None else self.seed + next(counter))

        def conv(filters, size, name):
            return keras.layers.Conv2D(filters, size, strides=2, padding="same", activation="relu",
                                       kernel_initializer=init(), name=name)

        def deconv(filters, name, activation="relu"):
            return keras.layers.Conv2DTranspose(filters, 4, strides=2, padding="same", activation=activation,
                                                kernel_initializer=init(), name=name)

        height, width, channels = self.image_shape
        self.encoder_convs = [conv(32, 4, "encoder_conv_1"), conv(32, 4, "encoder_conv_2"),
                              conv(64, 2, "encoder_conv_3"), conv(64, 2, "encoder_conv_4")]
        self.flatten = keras.layers.Flatten(name="encoder_flatten")
        self.encoder_hidden = keras.layers.Dense(self.hidden_units, activation="relu", kernel_initializer=init(),
                                                 name="encoder_hidden")
        self.mean_layer = keras.layers.Dense(self.latent_dim, kernel_initializer=init(), name="latent_mean")
        self.log_var_layer = keras.layers.Dense(self.latent_dim, kernel_initializer=init(), name="latent_log_var")
        grid = (height // 16, width // 16, 64)
        self.decoder_dense = [
            keras.layers.Dense(self.hidden_units, activation="relu", kernel_initializer=init(),
                               name="decoder_hidden"),
            keras.layers.Dense(grid[0] * grid[1] * grid[2], activation="relu", kernel_initializer=init(),
                               name="decoder_expand"),
        ]
        self.decoder_reshape = keras.layers.Reshape(grid, name="decoder_reshape")
        self.decoder_deconvs = [deconv(64, "decoder_deconv_1"), deconv(32, "decoder_deconv_2"),
                                deconv(32, "decoder_deconv_3"), deconv(channels, "decoder_logits", None)]
        self.seed_generator = keras.random.SeedGenerator(self.seed)

        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.kl_tracker = keras.metrics.Mean(name="kl")
        self.build((None, *self.image_shape))

    @classmethod
    def from_settings(cls, settings: VAEConfig, image_shape: Sequence[int], input_scale: float,
                      seed: int | None, **kwargs) -> ConvVAE:
        """The VAE of the schema's VAE settings (``RunConfig.vae``: ``latent_dim``, ``hidden_units``,
        ``beta``) for the dataset's ``image_shape`` and ``input_scale``, its weights drawn from
        ``seed``; ``kwargs`` go to the constructor (e.g. ``name``). The training settings (epochs,
        batch size, learning rate) are the caller's.

        Not ``from_config``: that is Keras' deserialisation hook, which ``keras.saving.load_model``
        calls with :meth:`get_config`'s dict.
        """
        return cls(image_shape=image_shape, latent_dim=settings.latent_dim, hidden_units=settings.hidden_units,
                   beta=settings.beta, input_scale=input_scale, seed=seed, **kwargs)

    def build(self, input_shape):
        if tuple(input_shape[1:]) != self.image_shape:
            raise ValueError(f"inputs must be images of shape {self.image_shape}, got {tuple(input_shape[1:])}")
        shape = tuple(input_shape)
        for layer in (*self.encoder_convs, self.flatten, self.encoder_hidden):
            layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.mean_layer.build(shape)
        self.log_var_layer.build(shape)
        shape = (input_shape[0], self.latent_dim)
        for layer in (*self.decoder_dense, self.decoder_reshape, *self.decoder_deconvs):
            layer.build(shape)
            shape = layer.compute_output_shape(shape)

    # ------------------------------------------------------------------ forward pass
    def encode(self, x, training: bool = False) -> dict:
        """``{"hidden", "mean", "log_var"}`` tensors of images ``x`` (as stored: uint8 or float)."""
        h = ops.cast(x, self.compute_dtype) * self.input_scale
        for layer in self.encoder_convs:
            h = layer(h, training=training)
        hidden = self.encoder_hidden(self.flatten(h), training=training)
        return {"hidden": hidden, "mean": self.mean_layer(hidden), "log_var": self.log_var_layer(hidden)}

    def decode(self, z, training: bool = False):
        """Bernoulli logits of the images decoded from latents ``z``."""
        h = ops.cast(z, self.compute_dtype)
        for layer in self.decoder_dense:
            h = layer(h, training=training)
        h = self.decoder_reshape(h)
        for layer in self.decoder_deconvs:
            h = layer(h, training=training)
        return h

    def decode_hidden(self, hidden, training: bool = False):
        """Logits decoded from encoder-hidden activations (through the latent mean)."""
        return self.decode(self.mean_layer(ops.cast(hidden, self.compute_dtype)), training=training)

    def call(self, inputs, training=None):
        encoded = self.encode(inputs, training=training)
        mean, log_var = encoded["mean"], encoded["log_var"]
        if training:
            eps = keras.random.normal(ops.shape(mean), dtype=mean.dtype, seed=self.seed_generator)
            z = mean + ops.exp(0.5 * log_var) * eps
        else:
            z = mean
        return {"logits": self.decode(z, training=training), "mean": mean, "log_var": log_var}

    # ------------------------------------------------------------------ loss
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        logits = y_pred["logits"]
        targets = ops.cast(x, logits.dtype) * self.input_scale
        # Sigmoid cross-entropy in its overflow-free form: max(l, 0) - l * t + log(1 + exp(-|l|)).
        bce = ops.relu(logits) - logits * targets + ops.log1p(ops.exp(-ops.abs(logits)))
        per_image = ops.sum(ops.reshape(bce, (ops.shape(bce)[0], -1)), axis=-1)
        mean, log_var = y_pred["mean"], y_pred["log_var"]
        kl_per_image = 0.5 * ops.sum(ops.exp(log_var) + ops.square(mean) - 1.0 - log_var, axis=-1)
        if sample_weight is None:
            reconstruction = ops.mean(per_image)
            kl = ops.mean(kl_per_image)
        else:
            w = ops.cast(ops.reshape(sample_weight, (-1,)), per_image.dtype)
            total = ops.maximum(ops.sum(w), 1e-12)
            reconstruction = ops.sum(per_image * w) / total
            kl = ops.sum(kl_per_image * w) / total
        loss = reconstruction + self.beta * kl
        if self.losses:
            loss = loss + ops.sum(self.losses)
        # self.metrics lists the trackers in this order.
        for tracker, value in zip(self.metrics, (loss, reconstruction, kl)):
            tracker.update_state(value)
        return loss

    @property
    def metrics(self):
        return [self.loss_tracker, self.reconstruction_tracker, self.kl_tracker]

    # ------------------------------------------------------------------ host helpers
    def _check_images(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.ndim != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise ValueError(f"x must have shape (n_images, {', '.join(map(str, self.image_shape))}), "
                             f"got {x.shape}")
        return x

    def representation(self, x: np.ndarray, source: str = "encoder_hidden", batch_size: int = 256) -> np.ndarray:
        """The representation an SAE reads, as float32 numpy: ``encoder_hidden`` (n x hidden_units)
        or ``latent_mean`` (n x latent_dim), computed in batches by a compiled predict function."""
        source = checks.one_of("source", source, REPRESENTATION_SOURCES)
        batch_size = checks.whole_number("batch_size", batch_size)
        x = self._check_images(x)
        width = self.hidden_units if source == "encoder_hidden" else self.latent_dim
        if len(x) == 0:
            return np.zeros((0, width), np.float32)
        view = inference_view(self, "encode", _SOURCE_KEYS[source])
        return np.asarray(view.predict(x, batch_size=batch_size, verbose=0), dtype=np.float32)

    def reconstruct_logits(self, x: np.ndarray | None = None, representation: np.ndarray | None = None,
                           source: str = "encoder_hidden", batch_size: int = 256) -> np.ndarray:
        """Logits of the images decoded (in batches) from their latent means.

        With ``representation`` (e.g. an SAE's reconstruction of ``source`` codes), the decoder reads it
        in place of the encoder's: ``encoder_hidden`` goes through the latent-mean layer first,
        ``latent_mean`` straight to the decoder; ``x`` is then not needed.
        """
        source = checks.one_of("source", source, REPRESENTATION_SOURCES)
        batch_size = checks.whole_number("batch_size", batch_size)
        if representation is None:
            if x is None:
                raise ValueError("reconstruct_logits needs images x or a representation")
            x = self._check_images(x)
            inputs, view = x, inference_view(self, "__call__", "logits")
        else:
            width = self.hidden_units if source == "encoder_hidden" else self.latent_dim
            inputs = np.asarray(representation, dtype=np.float32)
            if inputs.ndim != 2 or inputs.shape[1] != width:
                raise ValueError(f"representation must have shape (n, {width}) for source {source!r}, "
                                 f"got {inputs.shape}")
            view = inference_view(self, "decode_hidden" if source == "encoder_hidden" else "decode")
        if len(inputs) == 0:
            return np.zeros((0, *self.image_shape), np.float32)
        return np.asarray(view.predict(inputs, batch_size=batch_size, verbose=0), dtype=np.float32)

    # ------------------------------------------------------------------ serialisation
    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({
            "image_shape": list(self.image_shape),
            "latent_dim": self.latent_dim,
            "hidden_units": self.hidden_units,
            "beta": self.beta,
            "input_scale": self.input_scale,
            "seed": self.seed,
        })
        return config
