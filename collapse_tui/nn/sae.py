"""The sparse autoencoder trained on a VAE's representation."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from collapse_tui.config import (AUXK_CANDIDATES, K_METHODS, NORMALIZATIONS, SPARSITY_METHODS,
                                 WITHDRAWN_NORMALIZATIONS, SAEConfig)
from collapse_tui.nn import checks, input_statistics, methods
from collapse_tui.nn.activations import METHOD_LAYERS
from collapse_tui.nn.bias_floor import update_bias_floor
from collapse_tui.nn.ghost_grads import ghost_grads_loss
from collapse_tui.nn.layers import TopK, inference_view, reset_compiled_functions
from collapse_tui.nn.methods import common
from collapse_tui.nn.regularizers import L1ActivityRegularizer
from collapse_tui.nn.schedules import SparsitySchedule

@keras.saving.register_keras_serializable(package="collapse_tui")
class SparseAutoencoder(keras.Model):
    """A sparse autoencoder with an overcomplete dictionary of unit-norm decoder vectors.

    Forward pass, for an input ``x`` of ``input_dim`` features::

        z     = (x - mean) / std                      # input normalisation, set by adapt()
        codes = act((z - b_dec) @ W_enc + b_enc)      # act: the method's activation (Methods, below)
        z_hat = codes @ W_dec + b_dec                 # W_dec: n_neurons x input_dim, unit-norm rows
        x_hat = z_hat * std + mean                    # back in the original input space

    Loss (through ``compute_loss``, so ``fit`` works unchanged on every backend)::

        reconstruction = mean over the batch of  sum over features of (z_hat - z)^2
        sparsity       = l1_coefficient * mean over the batch of sum over neurons of |codes|  (l1; jumprelu: below)
        loss           = reconstruction + sparsity

    The reconstruction error is measured in the normalised space and summed over features (the
    usual SAE objective: both terms are per-sample sums, so the L1 coefficient weighs one sample's
    total activation against its squared error). Logged metrics: ``loss``, ``reconstruction``,
    ``sparsity_loss`` (0 for Top-k and BatchTopK) and ``l0`` (mean number of non-zero codes per sample).
    ``sparsity`` itself is left to :class:`~collapse_tui.nn.SparsityScheduler`, which logs the
    current k or coefficient under that name.

    Each dictionary vector (a row of ``W_dec``, one per neuron) starts at unit norm and is projected
    back to unit norm after every optimiser step (``keras.constraints.UnitNorm(axis=1)``).

    Methods: ``topk`` keeps each sample's k largest pre-activations; ``batchtopk`` keeps the k × batch
    largest across the batch while training and cuts at a learned threshold afterwards (Bussmann et al.
    2024); ``l1`` is a ReLU with the L1 penalty above; ``jumprelu`` zeroes pre-activations below a
    learned per-neuron threshold and penalises the number of active neurons, L0, with a straight-through
    estimator (Rajamanoharan et al. 2024): ``sparsity = coefficient * mean over the batch of L0``. The
    arithmetic is the kernels' of :mod:`collapse_tui.nn.methods`, with this model as their one member;
    a method's variables live in its sub-layer (``topk``: TopK or BatchTopK; ``jumprelu``: JumpReLU).

    Remedies for dead neurons (each off by default):

    - ``auxk``: Gao et al.'s AuxK loss as OpenAI's ``train.py`` scales it
      (:func:`collapse_tui.nn.methods.common.auxk_loss`): the ``auxk_k`` largest pre-activations of the
      neurons idle for ``dead_steps`` steps (default k_aux = d/2) reconstruct the residual; logged as
      ``auxk_loss`` (OpenAI's ``normalized_mse``) and ``auxk_dead`` (the dead fraction).
    - ``ghost_grads``: Anthropic's ghost grads (:mod:`collapse_tui.nn.ghost_grads`): the neurons idle for
      ``dead_steps`` steps get a gradient through ``exp`` of their pre-activations toward the residual, in
      a term whose value equals the reconstruction error while any neuron is dead (so ``loss`` counts it).
    - ``tied_init``: ``W_enc`` starts as ``W_dec`` transposed (nothing else).
    - ``data_init``: :meth:`adapt` starts the decoder's rows at randomly drawn training inputs (centred on
      ``b_dec``'s start, unit norm) and ``W_enc`` at their transpose.
    - ``project_decoder_grads``: each unit-norm decoder row's gradient loses its component along the row
      (OpenAI's ``unit_norm_decoder_grad_adjustment_``); models saved before this switch load with it
      equal to their ``tied_init``, which then meant both (:meth:`from_config`).
    - ``geometric_median_init``: :meth:`adapt` starts ``b_dec`` at the normalised inputs' geometric median
      (:mod:`collapse_tui.nn.input_statistics`, as OpenAI's ``init_from_data_``) instead of their mean.
    - ``bias_floor``: a neuron whose running firing frequency (``fire_rate``, an average over
      ``bias_window`` updates) is below the floor has its pre-activation raised by ``bias_step`` per
      update (``bias_offset``, added to ``b_enc``'s), until it fires (:mod:`collapse_tui.nn.bias_floor`).

    Args:
        input_dim: number of input features.
        n_neurons: dictionary size.
        method: ``"topk"``, ``"batchtopk"``, ``"l1"`` or ``"jumprelu"`` (above; the schema's
            ``SPARSITY_METHODS``).
        k: active neurons per sample for Top-k and BatchTopK (1 .. n_neurons).
        l1_coefficient: penalty weight of L1 and JumpReLU (>= 0).
        normalization: ``"none"``, ``"unit_norm"`` (divide by one scalar so inputs have unit mean
            squared norm) or ``"standardise"`` (subtract the mean, divide by the standard deviation,
            guarded); the statistics come from :meth:`adapt`.
        seed: seed of the weight initialisation (None: Keras' global random state).
        auxk, auxk_k, auxk_coefficient, auxk_candidates, dead_steps: the AuxK remedy (above); ``auxk_k=None``:
            ``max(1, input_dim // 2)``; ``auxk_candidates``: ``relu`` or ``softplus`` (:func:`common.auxk_codes`).
        ghost_grads: the ghost-grads remedy (above), on the neurons idle for ``dead_steps`` steps.
        tied_init: the encoder starts as the decoder transposed (above).
        data_init: the decoder's rows start at training inputs, drawn in :meth:`adapt` (above).
        project_decoder_grads: decoder-row gradient projection (above).
        geometric_median_init: ``b_dec`` from the geometric median in :meth:`adapt` (above).
        jumprelu_threshold, jumprelu_bandwidth: JumpReLU's initial threshold and the width of the
            straight-through estimator's window.
        batchtopk_momentum, batchtopk_start: BatchTopK's inference-threshold average: the weight of each
            batch, and the training batches before it starts (:mod:`collapse_tui.nn.methods.batchtopk`).
        target_l0, target_l0_gain: L1 and JumpReLU only: each training step moves the penalty
            coefficient toward the one giving this batch L0
            (:func:`~collapse_tui.nn.methods.common.controlled_coefficient`); None: the coefficient is
            set from outside only (:meth:`set_sparsity`).
        bias_floor, bias_step, bias_window: the bias-floor remedy (above); a floor of 0 is off (and the
            model then holds neither variable, as before the remedy existed).
    """

    def __init__(self, input_dim: int, n_neurons: int = 500, method: str = "topk", k: int = 50,
                 l1_coefficient: float = 1e-3, normalization: str = "none", seed: int | None = None,
                 auxk: bool = False, auxk_k: int | None = None, auxk_coefficient: float = 1 / 32,
                 auxk_candidates: str = "relu", dead_steps: int = 200, ghost_grads: bool = False,
                 tied_init: bool = False, data_init: bool = False, project_decoder_grads: bool = False,
                 geometric_median_init: bool = False, jumprelu_threshold: float = 1e-3,
                 jumprelu_bandwidth: float = 1e-3, batchtopk_momentum: float = 0.01, batchtopk_start: int = 0,
                 target_l0: float | None = None, target_l0_gain: float = 1e-3, bias_floor: float = 0.0,
                 bias_step: float = 1e-3, bias_window: int = 100, **kwargs):
        super().__init__(**kwargs)
        # The schema checks a run's settings; these checks are for direct construction, and cover
        # the arguments the method does not use too: get_config saves them all.
        self.input_dim = checks.whole_number("input_dim", input_dim)
        self.n_neurons = checks.whole_number("n_neurons", n_neurons)
        self.method = checks.one_of("method", method, SPARSITY_METHODS)
        # A withdrawn normalisation is still read, so that models saved with it load (the schema refuses
        # it for new runs).
        self.normalization = checks.one_of("normalization", normalization,
                                           NORMALIZATIONS + tuple(WITHDRAWN_NORMALIZATIONS))
        self.seed = checks.seed(seed)
        self._k = checks.whole_number("k", k)
        self.method_kernel = methods.kernel(self.method)  # its arithmetic; a class: Keras neither tracks nor saves it
        if self.method_kernel.by_k and self._k > self.n_neurons:
            raise ValueError(f"k must be at most n_neurons ({self.n_neurons}), got {self._k}")
        self._l1_coefficient = checks.number("l1_coefficient", l1_coefficient, 0)
        self.auxk = bool(auxk)
        self.auxk_k = None if auxk_k is None else checks.whole_number("auxk_k", auxk_k)
        self.auxk_coefficient = checks.number("auxk_coefficient", auxk_coefficient, 0)
        self.auxk_candidates = checks.one_of("auxk_candidates", auxk_candidates, AUXK_CANDIDATES)
        self.dead_steps = checks.whole_number("dead_steps", dead_steps)
        self.ghost_grads = bool(ghost_grads)
        self.tied_init = bool(tied_init)
        self.data_init = bool(data_init)
        self.project_decoder_grads = bool(project_decoder_grads)
        self.geometric_median_init = bool(geometric_median_init)
        self.jumprelu_threshold = checks.number("jumprelu_threshold", jumprelu_threshold, 0, above=True)
        self.batchtopk_momentum = checks.number("batchtopk_momentum", batchtopk_momentum, 0, above=True, high=1)
        self.batchtopk_start = checks.whole_number("batchtopk_start", batchtopk_start, minimum=0)
        self.target_l0 = None if target_l0 is None else checks.number("target_l0", target_l0, 0, above=True)
        self.target_l0_gain = checks.number("target_l0_gain", target_l0_gain, 0, above=True)
        self.jumprelu_bandwidth = checks.number("jumprelu_bandwidth", jumprelu_bandwidth, 0, above=True)
        self.bias_floor = checks.number("bias_floor", bias_floor, 0, high=1)
        self.bias_step = checks.number("bias_step", bias_step, 0, above=True)
        self.bias_window = checks.whole_number("bias_window", bias_window)

        # The sub-layer that holds the method's variables, under its attribute (its saved path).
        self.topk = self.jumprelu = None
        if self.method in METHOD_LAYERS:
            setattr(self, METHOD_LAYERS[self.method].sae_attribute, METHOD_LAYERS[self.method].for_sae(self))
        # The penalty weight of l1 and jumprelu lives in the regularizer's variable, which a schedule
        # changes between epochs without retracing the step.
        self.l1_regularizer = None if self.method_kernel.by_k else L1ActivityRegularizer(self._l1_coefficient)
        if self.l1_regularizer is not None:
            # Tracked by the model, so compiled steps (JAX's stateless ones included) read its value.
            self.l1_coefficient_variable = self.l1_regularizer.variable
        # Neurons' idle streaks only matter to a remedy that acts on dead neurons.
        self.aux_topk = TopK(self.resolved_auxk_k, name="aux_topk") if self.auxk else None

        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.sparsity_tracker = keras.metrics.Mean(name="sparsity_loss")
        self.l0_tracker = keras.metrics.Mean(name="l0")
        self.auxk_tracker = keras.metrics.Mean(name="auxk_loss") if self.auxk else None
        self.dead_tracker = keras.metrics.Mean(name="auxk_dead") if self.auxk else None
        object.__setattr__(self, "_step_cache", None)
        self.build((None, self.input_dim))

    @classmethod
    def from_settings(cls, settings: SAEConfig, input_dim: int, seed: int | None,
                      **kwargs) -> SparseAutoencoder:
        """The autoencoder of the schema's SAE settings (``RunConfig.sae``), reading ``input_dim``
        features, its weights drawn from ``seed``.

        It starts at the sparsity of the schedule's first epoch
        (``SparsitySchedule.from_settings(settings).value(0)``): k for Top-k and BatchTopK, the penalty
        coefficient for L1 and JumpReLU; the other parameter keeps its setting. ``kwargs`` go to the
        constructor (e.g. ``name``).

        Not ``from_config``: that is Keras' deserialisation hook, which ``keras.saving.load_model``
        calls with :meth:`get_config`'s dict.
        """
        first = SparsitySchedule.from_settings(settings).value(0)
        by_k = settings.method in K_METHODS
        remedies = settings.remedies
        return cls(
            input_dim=input_dim, n_neurons=settings.n_neurons, method=settings.method,
            k=int(first) if by_k else settings.k,
            l1_coefficient=settings.l1_coefficient if by_k else float(first),
            normalization=settings.normalization, seed=seed,
            auxk=remedies.auxk, auxk_k=remedies.auxk_k, auxk_coefficient=remedies.auxk_coefficient,
            auxk_candidates=remedies.auxk_candidates, dead_steps=remedies.dead_steps,
            ghost_grads=remedies.ghost_grads, tied_init=remedies.tied_init, data_init=remedies.data_init,
            project_decoder_grads=remedies.project_decoder_grads, geometric_median_init=remedies.geometric_median_init,
            jumprelu_threshold=settings.jumprelu_threshold, jumprelu_bandwidth=settings.jumprelu_bandwidth,
            batchtopk_momentum=settings.batchtopk_threshold_momentum,
            batchtopk_start=settings.batchtopk_threshold_start,
            target_l0=settings.target_l0, target_l0_gain=settings.target_l0_gain,
            bias_floor=remedies.bias_floor, bias_step=remedies.bias_step, bias_window=remedies.bias_window,
            **kwargs,
        )

    # ------------------------------------------------------------------ weights
    def build(self, input_shape):
        dim = input_shape[-1]
        if dim is not None and dim != self.input_dim:
            raise ValueError(f"inputs must have input_dim={self.input_dim} features, got {dim}")
        seed = self.seed
        d, m = self.input_dim, self.n_neurons
        self.norm_mean = self.add_weight(shape=(d,), initializer="zeros", trainable=False, name="norm_mean")
        self.norm_std = self.add_weight(shape=(d,), initializer="ones", trainable=False, name="norm_std")
        self.b_dec = self.add_weight(shape=(d,), initializer="zeros", name="b_dec")
        self.W_enc = self.add_weight(shape=(d, m), initializer=keras.initializers.GlorotUniform(seed=seed),
                                     name="W_enc")
        self.b_enc = self.add_weight(shape=(m,), initializer="zeros", name="b_enc")
        self.W_dec = self.add_weight(
            shape=(m, d), initializer=keras.initializers.RandomNormal(seed=None if seed is None else seed + 1),
            constraint=keras.constraints.UnitNorm(axis=1), name="W_dec")
        self.W_dec.assign(self.W_dec.constraint(self.W_dec))
        if self.tied_init:
            self.W_enc.assign(ops.transpose(self.W_dec))
        # Training steps since each neuron last fired (counted on training batches only).
        self.idle_steps = self.add_weight(shape=(self.n_neurons,), initializer="zeros", trainable=False,
                                          name="idle_steps")
        # The bias floor's offset and running firing frequency (which starts at the floor), only with it on.
        self.bias_offset = self.fire_rate = None
        if self.bias_floor:
            self.bias_offset = self.add_weight(shape=(self.n_neurons,), initializer="zeros", trainable=False,
                                               name="bias_offset")
            self.fire_rate = self.add_weight(shape=(self.n_neurons,), trainable=False, name="fire_rate",
                                             initializer=keras.initializers.Constant(self.bias_floor))
        for layer in (self.topk, self.jumprelu, self.aux_topk):
            if layer is not None:
                layer.build((None, self.n_neurons))

    @property
    def resolved_auxk_k(self) -> int:
        """The number of dead neurons AuxK uses: ``auxk_k``, or ``max(1, input_dim // 2)`` when it is
        None, at most ``n_neurons``."""
        k = self.auxk_k if self.auxk_k is not None else max(1, self.input_dim // 2)
        return min(k, self.n_neurons)

    # ------------------------------------------------------------------ sparsity
    @property
    def sparsity(self) -> int | float:
        """The current k (Top-k, BatchTopK) or penalty coefficient (L1, JumpReLU)."""
        if self.topk is not None:
            return self.topk.k
        return self.l1_regularizer.coefficient

    @property
    def k(self) -> int:
        """Active neurons per sample (Top-k, BatchTopK: on average); the constructor's value otherwise."""
        return self.topk.k if self.topk is not None else self._k

    @property
    def l1_coefficient(self) -> float:
        """The L1 coefficient (L1); the constructor's value for Top-k."""
        return self.l1_regularizer.coefficient if self.l1_regularizer is not None else self._l1_coefficient

    def set_sparsity(self, value: float) -> None:
        """Set k (Top-k, BatchTopK: a whole number 1 .. n_neurons) or the penalty coefficient (L1,
        JumpReLU: >= 0).

        Safe between epochs of ``fit`` on every backend: a new k rebuilds the compiled train, test and
        predict functions (k is a static shape under TensorFlow and JAX); the L1 coefficient is a
        variable the compiled step reads, so it needs no rebuild.
        """
        if self.topk is not None:
            k = checks.whole_number("k", value)
            if k != self.topk.k:
                self.topk.set_k(k)
                reset_compiled_functions(self)
        else:
            self.l1_regularizer.set_coefficient(value)

    # ------------------------------------------------------------------ normalisation
    def adapt(self, x: np.ndarray) -> None:
        """Set the input normalisation from data ``x`` (n_samples x input_dim) and where ``b_dec`` starts
        (the normalised data's mean, or with ``geometric_median_init`` their geometric median), as
        :mod:`~collapse_tui.nn.input_statistics` computes them for ``normalization`` (``none``,
        ``unit_norm``: one scalar to unit mean squared norm, ``standardise``: per feature, guarded); with
        ``data_init``, the decoder's rows too, and the encoder as their transpose
        (:func:`~collapse_tui.nn.input_statistics.decoder_rows_from_data`), from ``x`` in memory or read as
        used (``blocks()``, ``take()``). Call it before training: until then it is the identity, ``b_dec`` 0."""
        if not isinstance(x, np.ndarray) and hasattr(x, "blocks"):  # rows read from a file as training uses them
            mean, std, centre = input_statistics.streamed_start(x, self.input_dim, self.normalization,
                                                                self.geometric_median_init, self.data_init)
        else:
            x = input_statistics.checked_rows(x, self.input_dim)
            mean, std = input_statistics.normalisation(x, self.normalization)
            centre = input_statistics.decoder_bias_start((x.astype(np.float64) - mean) / std,
                                                         self.geometric_median_init)
        self.norm_mean.assign(mean.astype("float32"))
        self.norm_std.assign(std.astype("float32"))
        self.b_dec.assign(centre.astype("float32"))
        if self.data_init:
            rows = input_statistics.decoder_rows_from_data(
                (x.astype(np.float64) - mean) / std - centre, self.n_neurons, None if self.seed is None else self.seed + 2)
            if rows is not None:
                self.W_dec.assign(rows.astype("float32"))
                self.W_enc.assign(rows.T.astype("float32"))

    # ------------------------------------------------------------------ forward pass
    def _normalize(self, x):
        x = ops.cast(x, self.compute_dtype)
        return (x - self.norm_mean) / self.norm_std

    def _pre_activations(self, z):
        pre = ops.matmul(z - self.b_dec, self.W_enc) + self.b_enc
        # A copy: compute_loss assigns the offset, and torch must not see a tensor of the forward pass change.
        return pre if self.bias_offset is None else pre + ops.copy(self.bias_offset)

    def _method_layer(self):
        # A method, not a property: Keras' saving walks attributes, and would save the layer under this name.
        layer_class = METHOD_LAYERS.get(self.method)
        return None if layer_class is None else getattr(self, layer_class.sae_attribute)

    def _activate(self, pre, training=False):
        """Codes of ``pre`` and what the penalty reads (member-first, or None), by the method's kernel as
        its one member; training updates the variables of the method's layer (BatchTopK's threshold)."""
        layer = self._method_layer()
        params = layer.kernel_params() if layer is not None else {}
        codes, aux, updates = self.method_kernel.activate(ops.expand_dims(pre, 0), params, bool(training))
        if updates:
            common.apply_updates(layer.kernel_variables(), updates)
        return codes[0], aux

    def _encode_normalized(self, z, training=False):
        return self._activate(self._pre_activations(z), training=training)[0]

    def _decoder(self):
        if not self.project_decoder_grads:
            return self.W_dec
        # Same value as W_dec; its gradient reaches W_dec without the component along each row
        # (d/dW of W - w <W, w> is I - w w^T), so Adam steps stay tangent to the unit sphere.
        w = ops.stop_gradient(self.W_dec)
        along = ops.sum(self.W_dec * w, axis=1, keepdims=True) - ops.sum(w * w, axis=1, keepdims=True)
        return self.W_dec - w * along

    def _decode_normalized(self, codes):
        return ops.matmul(codes, self._decoder()) + self.b_dec

    def encode(self, x):
        """Codes (neuron activations, n x n_neurons) of inputs ``x`` in the original space."""
        return self._encode_normalized(self._normalize(x))

    def decode(self, codes):
        """Reconstruction, in the original input space, of ``codes``."""
        z_hat = self._decode_normalized(ops.cast(codes, self.compute_dtype))
        return z_hat * self.norm_std + self.norm_mean

    def call(self, inputs, training=False):
        z = self._normalize(inputs)
        pre = self._pre_activations(z)
        codes, aux = self._activate(pre, training=training)
        z_hat = self._decode_normalized(codes)
        outputs = z_hat * self.norm_std + self.norm_mean
        # compute_loss runs in the same step (and trace) right after this call: it reuses these
        # tensors, keyed by the output, instead of encoding the batch a second time.
        object.__setattr__(self, "_step_cache", (outputs, z, pre, codes, aux, z_hat))
        return outputs

    def dead_mask(self):
        """Neurons counted dead by the remedies: idle for at least ``dead_steps`` training steps."""
        return ops.greater_equal(ops.convert_to_tensor(self.idle_steps), float(self.dead_steps))

    def _auxk_loss(self, z, pre, z_hat, batch):
        """AuxK's term, logged error and dead fraction (:func:`~collapse_tui.nn.methods.common.auxk_loss`,
        as its one member: ``z`` and ``z_hat`` (1, B, d), ``pre`` (B, m))."""
        dead = ops.expand_dims(self.dead_mask(), 0)
        aux_codes = common.auxk_codes(ops.expand_dims(pre, 0), dead, self.aux_topk.k,
                                      smooth=self.auxk_candidates == "softplus")
        aux_reconstruction = ops.matmul(aux_codes[0], self._decoder())  # no b_dec: z_hat already has it
        values = common.auxk_loss(z, z_hat, ops.expand_dims(aux_reconstruction, 0), dead, batch)
        return tuple(value[0] for value in values)

    # ------------------------------------------------------------------ loss
    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        cache = self.__dict__.get("_step_cache")
        object.__setattr__(self, "_step_cache", None)
        if cache is not None and cache[0] is y_pred:
            _, z, pre, codes, aux, z_hat = cache
        else:
            z = self._normalize(x)
            pre = self._pre_activations(z)
            codes, aux = self._activate(pre, training=training)
            z_hat = self._decode_normalized(codes)

        # The kernels' shapes: one member, a leading axis of 1.
        z1, z_hat1, codes1 = (ops.expand_dims(t, 0) for t in (z, z_hat, codes))
        batch = common.BatchMeans(codes1, sample_weight)
        errors = ops.sum(ops.square(z_hat1 - z1), axis=-1)  # (1, B)
        reconstruction = batch(errors)[0]
        coefficient = None if self.l1_regularizer is None else ops.reshape(self.l1_regularizer.variable, (1,))
        if coefficient is not None and self.target_l0:  # assigned below: torch must not see it change in place
            coefficient = ops.copy(coefficient)
        sparsity = self.method_kernel.penalty(codes1, aux, coefficient, batch)[0]
        loss = reconstruction + sparsity
        if training:
            fired = ops.any(ops.greater(codes, 0), axis=0)
            idle = ops.convert_to_tensor(self.idle_steps)
            self.idle_steps.assign(ops.where(fired, ops.zeros_like(idle), idle + 1.0))
            if self.bias_offset is not None:
                update_bias_floor(self.fire_rate, self.bias_offset, codes, self.bias_floor, self.bias_step,
                                  float(self.bias_window))
        auxk_values = ()
        if self.auxk:
            term, *auxk_values = self._auxk_loss(z1, pre, z_hat1, batch)
            loss = loss + self.auxk_coefficient * term
        if self.ghost_grads:
            decoder = ops.expand_dims(self._decoder(), 0)
            dead = ops.expand_dims(self.dead_mask(), 0)
            loss = loss + ghost_grads_loss(ops.expand_dims(pre, 0), dead, decoder, z1 - z_hat1, errors, batch)[0]
        if self.losses:
            loss = loss + ops.sum(self.losses)
        l0 = batch(ops.sum(ops.cast(ops.not_equal(codes1, 0), codes.dtype), axis=-1))[0]
        if training and self.target_l0 and self.l1_regularizer is not None:
            variable = self.l1_regularizer.variable
            variable.assign(ops.cast(common.controlled_coefficient(
                variable, l0, self.target_l0, self.target_l0_gain), variable.dtype))

        # self.metrics lists the trackers in this order.
        for tracker, value in zip(self.metrics, (loss, reconstruction, sparsity, l0, *auxk_values)):
            tracker.update_state(value)
        return loss

    @property
    def metrics(self):
        extra = [self.auxk_tracker, self.dead_tracker] if self.auxk else []
        return [self.loss_tracker, self.reconstruction_tracker, self.sparsity_tracker, self.l0_tracker, *extra]

    # ------------------------------------------------------------------ host helpers
    def _host_input(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise ValueError(f"x must have shape (n_samples, {self.input_dim}), got {x.shape}")
        return x

    def codes(self, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Codes of ``x`` (n x input_dim) as a float32 numpy array (n x n_neurons), in batches."""
        x = self._host_input(x)
        batch_size = checks.whole_number("batch_size", batch_size)
        if len(x) == 0:
            return np.zeros((0, self.n_neurons), np.float32)
        out = inference_view(self, "encode").predict(x, batch_size=batch_size, verbose=0)
        return np.asarray(out, dtype=np.float32)

    def pre_activations(self, x: np.ndarray) -> np.ndarray:
        """The encoder's output before any activation, (n x n_neurons) float32, computed on the host from
        the current weights (the same arithmetic as the forward pass; it only says which neurons could
        ever pass a ReLU, so float32 rounding in another order does not matter)."""
        x = self._host_input(x)
        weight = lambda v: keras.ops.convert_to_numpy(v).astype(np.float32)  # noqa: E731
        z = (x - weight(self.norm_mean)) / weight(self.norm_std)
        pre = (z - weight(self.b_dec)) @ weight(self.W_enc) + weight(self.b_enc)
        return pre if self.bias_offset is None else pre + weight(self.bias_offset)

    def decoder_directions(self) -> np.ndarray:
        """The decoder's rows (n_neurons x input_dim, unit norm) as a float32 numpy array: each neuron's
        direction in the normalised input space."""
        return keras.ops.convert_to_numpy(self.W_dec).astype(np.float32)

    def reconstruct(self, x: np.ndarray, batch_size: int = 1024) -> np.ndarray:
        """Reconstruction of ``x`` in the original input space, as a float32 numpy array, in batches."""
        x = self._host_input(x)
        batch_size = checks.whole_number("batch_size", batch_size)
        if len(x) == 0:
            return np.zeros((0, self.input_dim), np.float32)
        out = self.predict(x, batch_size=batch_size, verbose=0)
        return np.asarray(out, dtype=np.float32)

    # ------------------------------------------------------------------ serialisation
    # The constructor's arguments get_config saves, each read from the attribute of its name.
    SAVED_SETTINGS = ("input_dim", "n_neurons", "method", "k", "l1_coefficient", "normalization", "seed", "auxk",
                      "auxk_k", "auxk_coefficient", "auxk_candidates", "dead_steps", "ghost_grads", "tied_init",
                      "data_init", "project_decoder_grads", "geometric_median_init", "jumprelu_threshold",
                      "jumprelu_bandwidth", "batchtopk_momentum", "batchtopk_start", "target_l0", "target_l0_gain",
                      "bias_floor", "bias_step", "bias_window")

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update({name: getattr(self, name) for name in self.SAVED_SETTINGS})
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Keras' deserialisation hook. A config saved before ``project_decoder_grads`` existed, when
        ``tied_init`` meant both the tied initialisation and the gradient projection, gets
        ``project_decoder_grads = tied_init``: such a model trains on as it did."""
        config = dict(config)
        if "project_decoder_grads" not in config:
            config["project_decoder_grads"] = bool(config.get("tied_init", False))
        return super().from_config(config, custom_objects=custom_objects)
