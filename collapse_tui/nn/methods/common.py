"""What the sparsity methods share: the kernel interface, the k-th largest value of each row, means over
a batch, and AuxK (a remedy for dead neurons that works with every method). ``keras.ops`` only.

Every tensor has a leading member axis: ``pre`` and codes are (N, B, m) for N members (a lone SAE is
one member: its tensors get a leading axis of 1), a per-member number is (N,), a per-neuron one (N, m).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from keras import ops


def finite_or_zero(t):
    """``t`` with every NaN or infinity replaced by 0."""
    return ops.where(ops.isfinite(t), t, ops.zeros_like(t))


def per_member(value, ndim: int):
    """A per-member number (N,) shaped to broadcast against an (N, ...) tensor of rank ``ndim``; a Python
    number is returned as it is (it then enters the arithmetic as it always did)."""
    if isinstance(value, (int, float)):
        return value
    return ops.reshape(value, (-1,) + (1,) * (ndim - 1))


def per_neuron(value, ndim: int):
    """A per-neuron value (N, m) shaped to broadcast against an (N, ..., m) tensor of rank ``ndim``."""
    shape = ops.shape(value)
    return ops.reshape(value, (shape[0],) + (1,) * (ndim - 2) + (shape[-1],))


def kth_largest(x, k, k_max: int | None = None):
    """Each row's k-th largest value (keepdims), per member: ``x`` (N, ..., m) non-negative (ReLU'd). The
    value itself, exactly, so ``x >= result`` keeps the k largest (and every entry tied with the k-th),
    by one of three computations that agree to the bit:

    - ``k`` a Python int (a lone SAE's Top-k, whose k is a static shape): the minimum of
      ``top_k(x, k)``'s values (slicing the k-th entry out of top_k's output makes XLA sort the whole
      row, several times slower);
    - ``k`` per member (N,), float whole numbers in [1, k_max], with ``k_max`` (eager torch):
      ``top_k(x, k_max)``, sorted, then each member's entry k - 1 (torch's ``topk`` selects without
      sorting the whole row);
    - ``k`` per member with ``k_max=None`` (TensorFlow, JAX, compiled torch): a bisection on the values'
      bit patterns (for non-negative float32 numbers, the order of their bits read as int32 is the
      order of the numbers): the largest pattern ``p`` with at least k entries at or above it is the
      k-th largest entry. 31 compare-and-count passes over the row, no sort: XLA's CPU ``top_k`` sorts,
      and this took 2.3 ms against 4.8 (batch 16) and 21 against 37 (batch 128) for 16 members of 500
      neurons at k_max = 100 on TensorFlow, 1.5 against 4.0 and 19 against 33 on JAX (2 CPU cores,
      medians of 7 rounds); on eager torch it is 4.5× slower than ``topk``; compiled, about as fast (a
      lone SAE, three interleaved epochs: 328 against 343 steps/s at batch 16, 191 against 182 at batch
      128). No static k: a new k recompiles nothing.
    """
    if isinstance(k, int):
        values, _ = ops.top_k(x, k, sorted=False)
        return ops.min(values, axis=-1, keepdims=True)
    return kth_largest_by_bisection(x, k) if k_max is None else kth_largest_by_top_k(x, k, k_max)


def kth_largest_by_top_k(x, k, k_max: int):
    """:func:`kth_largest` by ``top_k(x, k_max)``: x (N, B, m), k (N,)."""
    values, _ = ops.top_k(x, k_max, sorted=True)  # descending: a member's k-th largest is at k - 1
    shape = ops.shape(values)
    index = ops.broadcast_to(ops.reshape(ops.cast(k, "int32") - 1, (-1, 1, 1)), (shape[0], shape[1], 1))
    return ops.take_along_axis(values, index, axis=-1)


def kth_largest_by_bisection(x, k):
    """:func:`kth_largest` by bisection on the bit patterns: x (N, ..., m), k (N,)."""
    bits = ops.view(ops.stop_gradient(ops.cast(x, "float32")), "int32")
    need = per_member(ops.cast(k, "int32"), len(bits.shape))
    low = ops.zeros_like(bits[..., :1])  # at least k entries >= low (a row has m >= k_max entries >= 0)
    high = ops.max(bits, axis=-1, keepdims=True) + 1  # no entry >= high

    def halve(_, bounds):
        low, high = bounds
        middle = low + (high - low) // 2
        enough = ops.sum(ops.cast(bits >= middle, "int32"), axis=-1, keepdims=True) >= need
        return ops.where(enough, middle, low), ops.where(enough, high, middle)

    # high - low < 2**31 halves each pass, down to 1: low is then the k-th largest. A loop rather than 31
    # copies of the pass: the same speed, half XLA's compile time (0.44 s against 0.86 s on TensorFlow).
    low, _ = ops.fori_loop(0, 31, halve, (low, high))
    return ops.cast(ops.view(low, "float32"), x.dtype)


def keep_largest(x, k, k_max: int | None = None):
    """``x`` (non-negative) with each row's entries below its k-th largest zeroed (:func:`kth_largest`):
    ties at the cut are all kept; gradients flow only through the kept entries."""
    return ops.where(x >= kth_largest(x, k, k_max), x, ops.zeros_like(x))


class BatchMeans:
    """Means over the batch axis (1) of (N, B, ...) tensors, with the sample weights ``weights`` (B,) when
    given (each member's batch weighted alike)."""

    def __init__(self, codes, weights=None):
        if weights is None:
            self.weights = None
            self.total = ops.cast(ops.shape(codes)[1], codes.dtype)
        else:
            self.weights = ops.cast(ops.reshape(weights, (-1,)), codes.dtype)
            self.total = ops.maximum(ops.sum(self.weights), 1e-12)

    def __call__(self, per_sample):
        """(N, B) -> (N,)."""
        if self.weights is None:
            return ops.mean(per_sample, axis=1)
        return ops.sum(per_sample * self.weights, axis=1) / self.total

    def of_features(self, t):
        """(N, B, d) -> (N, 1, d): each feature's mean over the batch."""
        if self.weights is None:
            return ops.mean(t, axis=1, keepdims=True)
        return ops.sum(t * ops.expand_dims(self.weights, -1), axis=1, keepdims=True) / self.total

    def weighted(self, t):
        """(N, B, d) times each sample's weight."""
        return t if self.weights is None else t * ops.expand_dims(self.weights, -1)

    def variance(self, t):
        """Mean over features of each feature's variance over the batch (ddof 0): (N, B, d) -> (N,)."""
        spread = ops.sum(ops.square(t - self.of_features(t)), axis=-1)
        return self(spread) / ops.cast(ops.shape(t)[-1], t.dtype)


class Kernel:
    """A sparsity method's arithmetic, over a leading member axis (one subclass per method, registered by
    the schema's name in :mod:`collapse_tui.nn.methods`). Stateless: the variables a method keeps (a
    threshold, its moving average) come in through ``params`` and their new values go out as updates,
    which the caller assigns (a lone SAE to its layer's variables, a bank to its stacked ones).

    ``params``: ``"k"`` (per member (N,), or a Python int when static) and ``"k_max"`` (a static bound
    for ``top_k``, or None for the bisection) for the k methods, plus the method's own variables
    (:attr:`variables`, member-first) and settings (:attr:`settings`: per member (N,), or a Python
    number shared by all). A lone SAE holds them in its method's layer
    (:data:`collapse_tui.nn.activations.METHOD_LAYERS`), which Keras saves with it.
    """

    name: str = ""
    by_k: bool = False  # the sparsity is k (else a penalty coefficient)
    variables: tuple[str, ...] = ()  # per-member variables the method reads (and may update)
    settings: tuple[str, ...] = ()  # per-member constants

    @classmethod
    def activate(cls, pre, params: Mapping[str, Any], training: bool):
        """``(codes, aux, updates)`` of pre-activations ``pre`` (N, ..., m): the codes, what
        :meth:`penalty` needs besides them (or None), and new values of the method's variables (by
        name; empty unless ``training``). ``training`` is a static Python bool."""
        raise NotImplementedError

    @classmethod
    def infer(cls, pre, params: Mapping[str, Any]):
        """The codes at inference (``activate(..., training=False)``'s)."""
        return cls.activate(pre, params, training=False)[0]

    @classmethod
    def penalty(cls, codes, aux, coefficient, batch: BatchMeans):
        """The sparsity term of the loss per member (N,): 0 unless the method is penalised."""
        return ops.zeros((ops.shape(codes)[0],), dtype=codes.dtype)


def apply_updates(variables: Mapping[str, Any], updates: Mapping[str, Any]) -> None:
    """Assign each update to its variable (by name), in the variable's shape."""
    for name, value in updates.items():
        variable = variables[name]
        variable.assign(ops.reshape(value, variable.shape))


def one_member(variables: Mapping[str, Any]) -> dict[str, Any]:
    """A lone layer's variables with a leading member axis of 1 (a scalar becomes (1,), a vector (1, m))."""
    return {name: ops.expand_dims(ops.convert_to_tensor(v), 0) for name, v in variables.items()}


def auxk_codes(pre, dead, k, k_max: int | None = None, smooth: bool = False):
    """AuxK's codes: the ``k`` largest ReLU'd pre-activations (N, B, m) among each member's ``dead``
    neurons (N, m); live ones enter as 0, which the cut never keeps as a code.

    ``smooth``: softplus in place of the ReLU. Gao et al.'s ReLU'd candidates leave out a neuron whose
    pre-activation is never positive (ReLU-dead): it is never picked and gets no gradient. Softplus is
    positive everywhere and increasing, so the k largest pre-activations are picked even when negative,
    and its gradient (a sigmoid) never vanishes: the role exp plays for dead neurons in Anthropic's ghost
    grads (2024), with a value that stays near the ReLU's for positive pre-activations."""
    active = ops.softplus(pre) if smooth else ops.relu(pre)
    candidates = ops.where(ops.expand_dims(dead, 1), active, ops.zeros_like(pre))
    return keep_largest(candidates, k, k_max)


def auxk_loss(z, z_hat, aux_reconstruction, dead, batch: BatchMeans):
    """The AuxK loss of Gao et al. (2024), scaled as in OpenAI's ``sparse_autoencoder/train.py``, per
    member: ``(term, logged, dead fraction)``, each (N,).

    A neuron that has not fired for ``dead_steps`` training steps counts as dead (``dead``, (N, m)); the
    ``auxk_k`` largest pre-activations among dead neurons (:func:`auxk_codes`; the paper's k_aux = d/2
    by default), through ReLU and the decoder *without* its bias (``aux_reconstruction``, (N, B, d)),
    reconstruct the main reconstruction's residual ``e = z - z_hat`` (held constant: the aux loss
    trains only the dead neurons' path, and ``b_dec`` is counted once, in ``z_hat``, as OpenAI's
    ``x - recons + pre_bias`` against a decode that adds ``pre_bias``)::

        aux_error = mean over the batch of sum over features of (e - e_hat)^2
        term      = Var(z) / Var(e) * aux_error          (the loss adds auxk_coefficient * term)

    ``Var(t)`` is the mean over features of each feature's variance over the batch (ddof 0, with the
    sample weights), never differentiated. OpenAI's loss is ``mse / Var(x) + c * mse_aux / Var(e)``
    (each mse a mean over batch and features); times the constant ``d * Var(x)``, to which Adam is
    invariant (up to its epsilon), that is our unnormalised reconstruction plus the term above. Named
    deviation: OpenAI takes ``Var(x)`` once, from a sample of the data; here it is the batch's
    ``Var(z)``, so the model needs no extra weight (files saved before load unchanged). A non-finite
    factor (no spread in the batch, e.g. a batch of one) counts as 0 (OpenAI's ``nan_to_num(0)``; it
    would map an infinity to the largest float instead), and the term is 0 while no neuron is dead.
    ``logged`` is OpenAI's ``normalized_mse`` before the coefficient, ``aux_error / (input_dim *
    Var(e))`` (1 when the dead neurons reconstruct nothing of a residual with zero mean; the term added
    to the loss is ``auxk_coefficient * input_dim * Var(z) * logged``).
    """
    residual = ops.stop_gradient(z - z_hat)
    error = batch(ops.sum(ops.square(residual - aux_reconstruction), axis=-1))
    residual_variance = batch.variance(residual)
    scale = ops.stop_gradient(batch.variance(z) / residual_variance)
    normalised = ops.stop_gradient(1.0 / (float(z.shape[-1]) * residual_variance))
    any_dead = ops.cast(ops.any(dead, axis=1), error.dtype)
    term = error * finite_or_zero(scale) * any_dead
    logged = error * finite_or_zero(normalised) * any_dead
    return term, logged, ops.mean(ops.cast(dead, error.dtype), axis=1)


def controlled_coefficient(coefficient, l0, target, gain):
    """The penalty coefficient after one step of the target-L0 controller: ``coefficient ×
    exp(gain × clip((L0 − target) / target, −1, 1))`` where ``target > 0``, unchanged elsewhere.

    A multiplicative (log-space) integral controller: the coefficient of an L1 or JumpReLU SAE sets its
    L0 over orders of magnitude, so it is stepped by a factor, not an amount; the relative error is
    clipped so a first batch far from the target moves the coefficient by at most ``exp(gain)``. With
    gain 1e-3 an error of 100% is an e-fold of the coefficient per 1,000 updates, and the batch-to-batch
    noise of L0 averages out over about that many. All arguments broadcast per member; ``l0`` is the
    batch's mean number of active codes (no gradient flows through it).
    """
    l0 = ops.stop_gradient(ops.cast(l0, "float32"))
    target = ops.cast(target, "float32")
    on = target > 0
    error = ops.clip((l0 - target) / ops.where(on, target, ops.ones_like(target)), -1.0, 1.0)
    coefficient = ops.cast(coefficient, "float32")
    return ops.where(on, coefficient * ops.exp(ops.cast(gain, "float32") * error), coefficient)
