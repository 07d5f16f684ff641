"""A bank of sparse autoencoders: N independent SAEs of one shape, stacked, trained by one optimiser step.

A sweep trains dozens of SAEs of the same size on the same codes. One such SAE's step (a 256 -> 500
dictionary at a batch of 16) is a few hundred kFLOP of arithmetic and a millisecond or more of fixed
cost per step (dispatch, callbacks, the optimiser's bookkeeping), so N SAEs in a row pay that cost N
times. A bank stacks their weights along a leading axis and trains them with batched matmuls
(``einsum``), one step for all: the fixed cost is paid once.

Members are independent: each member's loss depends only on its own slice of every weight, so the
gradient of the bank's loss (the sum of the members' losses) with respect to a member's slice is the
gradient of that member's own loss, and Adam, which works element by element, moves each slice as it
would move that member's weights alone. Each member also reads its own batches: the bank holds the
training codes on the device and every member has its own order of them per epoch
(:meth:`SAEBank.set_orders`), so a member with its own seed sees what it would see alone. A NaN in one
member stays in its slice (no operation mixes members).

What members may differ in: their weights' seeds, k or penalty coefficient (each its own schedule),
input normalisation, AuxK (on or off, k_aux, coefficient, dead_steps), ghost grads, decoder-gradient projection,
tied, data or geometric-median initialisation (all act before the bank is built), the bias floor (on or off,
its step and window), JumpReLU's bandwidth and BatchTopK's threshold momentum. What they must share
(:func:`bank_signature`): input width, dictionary size and method (the activation's code path). Batch
size, learning rate and data are the trainer's.

The bank is a training device, never saved: each member is copied out into its own
:class:`~collapse_tui.nn.SparseAutoencoder` (:meth:`SAEBank.write_member`) to be evaluated and saved as
a standalone ``.keras`` file, and copied back in (:meth:`SAEBank.read_member`) after host-side changes
such as resampling.
"""

from __future__ import annotations

from typing import Iterator, Mapping, Sequence

import keras
import numpy as np
from keras import ops

from collapse_tui.nn import member_slots, methods
from collapse_tui.nn.bias_floor import bank_state, update_bias_floor
from collapse_tui.nn.ghost_grads import ghost_grads_loss
from collapse_tui.nn.layers import inference_view, reset_compiled_functions
from collapse_tui.nn.member_means import MemberMeans
from collapse_tui.nn.methods import common
from collapse_tui.nn.resampling import optimizer_slots
from collapse_tui.nn.sae import SparseAutoencoder


def bank_signature(sae: SparseAutoencoder) -> tuple:
    """What SAEs must share to train in one bank: input width, dictionary size, method."""
    return (sae.input_dim, sae.n_neurons, sae.method)


def _np(value) -> np.ndarray:
    return np.asarray(ops.convert_to_numpy(value))


class SAEBank(keras.Model):
    """N SAEs, stacked, trained together on the rows of ``train_codes`` (see the module's docstring).

    ``fit`` it on the positions ``np.arange(len(train_codes))`` with ``shuffle=False``: at each step the
    batch of positions picks, for every member, rows of the codes through that member's order of the
    epoch (set before each epoch by :meth:`set_orders`). Its logs are vectors, one value per member:
    ``loss``, ``reconstruction``, ``sparsity_loss``, ``l0`` and, when a member uses AuxK, ``auxk_loss``
    and ``auxk_dead`` (0 for members without it), each computed as
    :class:`~collapse_tui.nn.SparseAutoencoder` computes it.

    Args:
        members: the SAEs, built and adapted (normalisation and ``b_dec`` set); their weights are
            copied in. They must share :func:`bank_signature`.
        train_codes: the training inputs (n x input_dim), one array for all members or one per member
            (members given the same array share it), held on the device for the whole training; or rows
            read as used (``take``): then ``fit`` it on :class:`~collapse_tui.nn.streamed_batches.StreamedBatches`.
    """

    def __init__(self, members: Sequence[SparseAutoencoder], train_codes: np.ndarray, **kwargs):
        super().__init__(**kwargs)
        members = list(members)
        if not members:
            raise ValueError("a bank needs at least one member")
        signatures = {bank_signature(m) for m in members}
        if len(signatures) > 1:
            raise ValueError(f"a bank's members must share input width, dictionary size and method; got "
                             f"{sorted(signatures)}")
        first = members[0]
        self.n_members = len(members)
        self.input_dim, self.n_neurons, self.method = bank_signature(first)
        # One table per distinct array (members of one VAE share theirs), stacked; each member reads its own.
        # One array, or one set of rows read as used, for all (both have ``take``); else a list, one per member.
        per_member = [train_codes] * len(members) if hasattr(train_codes, "take") else list(train_codes)
        if len(per_member) != len(members):
            raise ValueError(f"need training codes for each of the {len(members)} members, got {len(per_member)}")
        # Rows read from a file as training uses them (``take``) are not held: each step is fed its batches.
        self.streamed = per_member if any(not isinstance(c, np.ndarray) for c in per_member) else None
        tables: dict[int, np.ndarray] = {}
        for codes in per_member:
            tables.setdefault(id(codes), codes if self.streamed else np.asarray(codes, np.float32))
        shapes = {tuple(t.shape) for t in tables.values()}
        if len(shapes) != 1:
            raise ValueError(f"every member must train on as many codes of one width; got shapes {sorted(shapes)}")
        (shape,) = shapes
        if len(shape) != 2 or shape[1] != self.input_dim or shape[0] < 1:
            raise ValueError(f"train_codes must have shape (n >= 1, {self.input_dim}), got {shape}")
        self.n_rows = shape[0]
        table_index = {key: i for i, key in enumerate(tables)}
        self.offsets = np.array([table_index[id(c)] * self.n_rows for c in per_member], np.int64)
        codes = (None if self.streamed else np.concatenate(list(tables.values())) if len(tables) > 1
                 else next(iter(tables.values())))
        if codes is not None and len(codes) > 2**24:
            # float32 holds every row index exactly below 2**24; TensorFlow keeps int32 variables in host
            # memory, away from a GPU, so the orders are float.
            raise ValueError(f"a bank holds at most {2**24} rows of training codes, got {len(codes)}")
        self.uses_auxk = any(m.auxk for m in members)
        kinds = {m.auxk_candidates for m in members if m.auxk}
        if len(kinds) > 1:
            raise ValueError(f"a bank's AuxK members must share auxk_candidates; got {sorted(kinds)}")
        self.auxk_smooth = kinds == {"softplus"}
        self.projects = [bool(m.project_decoder_grads) for m in members]
        self.ghosts = [bool(m.ghost_grads) for m in members]
        n = self.n_members

        def stacked(name, values, trainable=True, constraint=None):
            array = np.stack([np.asarray(v, np.float32) for v in values])
            weight = self.add_weight(shape=array.shape, initializer="zeros", trainable=trainable,
                                     constraint=constraint, name=name)
            weight.assign(array)
            return weight

        # Every member's own weights, one slice each.
        self.norm_mean = stacked("norm_mean", [_np(s.norm_mean) for s in members], trainable=False)
        self.norm_std = stacked("norm_std", [_np(s.norm_std) for s in members], trainable=False)
        self.b_dec = stacked("b_dec", [_np(s.b_dec) for s in members])
        self.W_enc = stacked("W_enc", [_np(s.W_enc) for s in members])
        self.b_enc = stacked("b_enc", [_np(s.b_enc) for s in members])
        # The same constraint as a lone SAE's, row by row of each member's (n_neurons x input_dim) slice.
        self.W_dec = stacked("W_dec", [_np(s.W_dec) for s in members], constraint=keras.constraints.UnitNorm(axis=2))
        self.idle_steps = stacked("idle_steps", [_np(s.idle_steps) for s in members], trainable=False)
        # Per-member numbers the step reads from variables, so changing them needs no retrace.
        self.sparsity_values = self.add_weight(shape=(n,), initializer="zeros", trainable=False, name="sparsity")
        self.auxk_coefficients = self.add_weight(shape=(n,), initializer="zeros", trainable=False, name="auxk_c")
        self.auxk_ks = self.add_weight(shape=(n,), initializer="ones", trainable=False, name="auxk_k")
        self.dead_steps = self.add_weight(shape=(n,), initializer="ones", trainable=False, name="dead_steps")
        self.projection = self.add_weight(shape=(n,), initializer="zeros", trainable=False, name="projection")
        self.ghost_on = self.add_weight(shape=(n,), initializer="zeros", trainable=False, name="ghost_on")
        # The target-L0 controller (penalty methods): each member's target (0: none) and gain.
        self.target_l0s = self.add_weight(shape=(n,), initializer="zeros", trainable=False, name="target_l0")
        self.l0_gains = self.add_weight(shape=(n,), initializer="zeros", trainable=False, name="l0_gain")
        # The bias floor: each member's offset and firing rate, and its floor, step and window (rows of (3, N)).
        offsets, rates, control = bank_state(members, self.n_neurons)
        self.raises_bias = any(s.bias_offset is not None for s in members)
        self.bias_offset, self.fire_rate, self.bias_control = (
            stacked(name, values, trainable=False) for name, values in
            (("bias_offset", offsets), ("fire_rate", rates), ("bias_control", control)))
        # The method's own variables (BatchTopK's threshold, JumpReLU's log_threshold) and settings, stacked
        # under the kernel's names (attributes of the bank too): the kernel reads them member by member.
        self.kernel = methods.kernel(self.method)
        layers = [s._method_layer() for s in members]
        for name in self.kernel.variables:
            held = [layer.kernel_variables()[name] for layer in layers]
            setattr(self, name, stacked(name, [_np(v) for v in held], trainable=held[0].trainable))
        for name in self.kernel.settings:
            setattr(self, name, stacked(name, [layer.kernel_settings()[name] for layer in layers], trainable=False))
        # The data every member reads, and each member's order of it for the current epoch.
        if codes is not None:
            self.codes_table = self.add_weight(shape=codes.shape, initializer="zeros", trainable=False, name="codes")
            self.orders = self.add_weight(shape=(n, self.n_rows), initializer="zeros", trainable=False, name="orders")

        self._k_max = 1
        self._auxk_k_max = 1
        # Whether a step's k-th largest values come from top_k (whose k_max is a static shape: a new
        # largest k retraces the step) or from the bisection (no static k: k changes nothing compiled).
        self.selects_with_top_k = keras.backend.backend() == "torch"
        if codes is not None:
            self.codes_table.assign(codes)
        self.set_orders([np.arange(self.n_rows)] * n)
        self.auxk_coefficients.assign(np.array([s.auxk_coefficient if s.auxk else 0.0 for s in members], np.float32))
        auxk_ks = [s.resolved_auxk_k for s in members]
        self.auxk_ks.assign(np.array(auxk_ks, np.float32))
        self._auxk_k_max = max(auxk_ks)
        self.dead_steps.assign(np.array([s.dead_steps for s in members], np.float32))
        self.projection.assign(np.array(self.projects, np.float32))
        self.ghost_on.assign(np.array(self.ghosts, np.float32))
        self.controlled = [bool(s.target_l0) for s in members]
        self.target_l0s.assign(np.array([s.target_l0 or 0.0 for s in members], np.float32))
        self.l0_gains.assign(np.array([s.target_l0_gain for s in members], np.float32))
        self.set_sparsities([s.sparsity for s in members])

        names = ["loss", "reconstruction", "sparsity_loss", "l0"] + (["auxk_loss", "auxk_dead"] if self.uses_auxk
                                                                     else [])
        self.member_means = MemberMeans(n, names)
        object.__setattr__(self, "_step_cache", None)
        self.built = True

    # Steps TensorFlow runs per call of its training function (in a graph loop, callbacks in between).
    TF_STEPS_PER_EXECUTION = 32

    def compile(self, *args, **kwargs):
        """``keras.Model.compile``; under TensorFlow, unless the arguments say otherwise:

        - the step is XLA-compiled: TensorFlow runs each op of the step (Adam's updates of every stacked
          weight among them) as its own kernel, and XLA's fused step trained a 16-member bank (256 -> 500,
          k = 50, batch 16) at 1,358 updates/s against 937 without it on two CPU cores (one timing each,
          same process), for about 0.5 s more per retrace (a new largest k);
        - :data:`TF_STEPS_PER_EXECUTION` steps run per call, so that the fixed cost of a call (the
          function's dispatch, the callbacks) is paid once per 32 steps: a lone SAE (256 -> 500, k = 50)
          trained at 588 steps/s against 390 at batch 16 and 213 against 169 at batch 128 (five
          interleaved rounds, medians, two CPU cores). The stop check and progress then come every 32
          steps, a few milliseconds apart.

        JAX compiles with XLA anyway, and its trainer loops over steps in Python whatever the setting.
        Under torch the step is eager unless ``jit_compile=True`` asks for ``torch.compile`` (Keras' torch
        trainer runs one step a call either way); compiled, the k-th largest values come from the
        bisection, so that a new largest k (a schedule) recompiles nothing, as under XLA. What torch needs
        beyond keras.ops (a leaner step, a clean compile cache) the engine adds
        (:mod:`collapse_tui.engine.torch_bank`)."""
        backend = keras.backend.backend()
        if backend == "tensorflow":
            kwargs.setdefault("jit_compile", True)
            kwargs.setdefault("steps_per_execution", self.TF_STEPS_PER_EXECUTION)
        super().compile(*args, **kwargs)
        if backend == "torch":
            self.selects_with_top_k = not self.jit_compile

    # ------------------------------------------------------------------ members in and out
    def _pairs(self, sae: SparseAutoencoder) -> list:
        """(stacked variable, the SAE's variable) for everything a member holds."""
        pairs = [(self.norm_mean, sae.norm_mean), (self.norm_std, sae.norm_std), (self.b_dec, sae.b_dec),
                 (self.W_enc, sae.W_enc), (self.b_enc, sae.b_enc), (self.W_dec, sae.W_dec),
                 (self.idle_steps, sae.idle_steps)]
        if sae.bias_offset is not None:
            pairs += [(self.bias_offset, sae.bias_offset), (self.fire_rate, sae.fire_rate)]
        held = sae._method_layer().kernel_variables() if self.kernel.variables else {}
        return pairs + [(getattr(self, name), held[name]) for name in self.kernel.variables]

    def read_member(self, i: int, sae: SparseAutoencoder) -> None:
        """Copy ``sae``'s weights (and idle counts, thresholds) into member ``i``'s slices."""
        for stack, variable in self._pairs(sae):
            values = _np(stack.value).copy()
            values[i] = _np(variable.value)
            stack.assign(values)

    def write_members(self, members: dict[int, SparseAutoencoder]) -> None:
        """Copy each member ``i`` of ``members`` (weights, idle counts, thresholds, current sparsity) into
        its SAE; every stacked variable is read from the device once."""
        if not members:
            return
        sparsities = self.sparsities
        stacks = {}
        for i, sae in members.items():
            for stack, variable in self._pairs(sae):
                if id(stack) not in stacks:
                    stacks[id(stack)] = _np(stack.value)
                variable.assign(stacks[id(stack)][i])
            sae.set_sparsity(sparsities[i])

    def write_member(self, i: int, sae: SparseAutoencoder) -> SparseAutoencoder:
        """Copy member ``i`` into ``sae`` (see :meth:`write_members`); returns it."""
        self.write_members({i: sae})
        return sae

    def reset_optimizer_state(self, i: int, neurons) -> None:
        """Zero what the optimiser remembers (Adam's moments) of member ``i``'s ``neurons``: their decoder
        rows, encoder columns and encoder biases, as resampling does for a lone SAE."""
        neurons = np.asarray(neurons, dtype=np.int64)
        if neurons.size == 0 or self.optimizer is None:
            return
        for variable, index in ((self.W_dec, np.s_[i, neurons]), (self.W_enc, np.s_[i, :, neurons]),
                                (self.b_enc, np.s_[i, neurons])):
            for slot in optimizer_slots(self.optimizer, variable):
                state = _np(slot.value).copy()
                state[index] = 0.0
                slot.assign(state)

    def optimizer_states(self, members: Sequence[int]) -> dict[int, dict[str, np.ndarray]]:
        """What the optimiser remembers of each of ``members``, for a checkpoint
        (:func:`~collapse_tui.nn.member_slots.read_states`)."""
        return member_slots.read_states(self, members)

    def set_optimizer_states(self, states: dict[int, dict[str, np.ndarray]]) -> None:
        """Restore what :meth:`optimizer_states` returned (:func:`~collapse_tui.nn.member_slots.write_states`)."""
        member_slots.write_states(self, states)

    # ------------------------------------------------------------------ per-member settings
    @property
    def sparsities(self) -> list:
        """Each member's current k (Top-k, BatchTopK: ints) or penalty coefficient (L1, JumpReLU); a
        member under the target-L0 controller has the coefficient its training has reached."""
        values = list(self._sparsities)
        if any(self.controlled):
            now = _np(self.sparsity_values.value).astype(np.float64)
            values = [float(now[i]) if c else v for i, (c, v) in enumerate(zip(self.controlled, values))]
        return values

    def set_target_l0s(self, values: Sequence[float]) -> None:
        """Set each controlled member's target L0 (one value per member; a member without the controller
        keeps none whatever its value). Between epochs only, as :meth:`set_sparsities`."""
        values = [float(v) for v in values]
        if len(values) != self.n_members:
            raise ValueError(f"need one target L0 per member ({self.n_members}), got {len(values)}")
        if any(c and not 0 < v <= self.n_neurons for c, v in zip(self.controlled, values)):
            raise ValueError(f"target L0s must be in (0, {self.n_neurons}], got {values}")
        self.target_l0s.assign(np.array([v if c else 0.0 for c, v in zip(self.controlled, values)], np.float32))

    def set_sparsities(self, values: Sequence[float]) -> None:
        """Set every member's k or penalty coefficient (one value each). Between epochs only: under JAX the
        trainer holds the variables during an epoch. Under torch a new largest k retraces the step
        (``top_k``'s k_max is a static shape); anything else is a variable the compiled step reads."""
        values = [float(v) for v in values]
        if len(values) != self.n_members:
            raise ValueError(f"need one sparsity per member ({self.n_members}), got {len(values)}")
        if self.kernel.by_k:
            ks = [int(round(v)) for v in values]
            if any(k < 1 or k > self.n_neurons or k != v for k, v in zip(ks, values)):
                raise ValueError(f"k must be whole numbers in 1..{self.n_neurons}, got {values}")
            k_max = max(ks)
            if k_max != self._k_max:
                self._k_max = k_max
                if self.selects_with_top_k:
                    reset_compiled_functions(self)
        elif any(not np.isfinite(v) or v < 0 for v in values):
            raise ValueError(f"penalty coefficients must be finite and >= 0, got {values}")
        self.sparsity_values.assign(np.array(values, np.float32))
        # As set, not as float32 holds them: a member copied out has the coefficient a lone SAE would.
        self._sparsities = [int(round(v)) for v in values] if self.kernel.by_k else values

    def set_orders(self, orders: Sequence[np.ndarray]) -> None:
        """Each member's order of the training rows for the next epoch: a permutation (or any sequence of
        row indices) of length ``n_rows`` per member. Between epochs only (as :meth:`set_sparsities`)."""
        orders = np.asarray(orders)
        if orders.shape != (self.n_members, self.n_rows):
            raise ValueError(f"orders must have shape ({self.n_members}, {self.n_rows}), got {orders.shape}")
        if orders.min() < 0 or orders.max() >= self.n_rows:
            raise ValueError(f"orders must index the {self.n_rows} training rows")
        self.host_orders = orders  # what a streamed bank's batches are read by (nn.streamed_batches)
        if not self.streamed:
            self.orders.assign((orders + self.offsets[:, None]).astype(np.float32))

    # ------------------------------------------------------------------ the step
    def _inputs(self, positions):
        """Each member's batch (N, B, input_dim) for a batch of positions in the epoch's orders (a streamed
        bank is given the batches themselves)."""
        if self.streamed:  # (batch, members, input_dim), as nn.streamed_batches gives them
            return ops.transpose(ops.cast(positions, "float32"), (1, 0, 2))
        positions = ops.cast(ops.reshape(positions, (-1,)), "int32")
        rows = ops.cast(ops.take(self.orders, positions, axis=1), "int32")  # (N, B)
        return ops.take(self.codes_table, rows, axis=0)

    def _decoder(self):
        # As SparseAutoencoder._decoder, for the members whose projection is on (a 0/1 factor per member).
        if not any(self.projects):
            return self.W_dec
        w = ops.stop_gradient(self.W_dec)
        along = ops.sum(self.W_dec * w, axis=2, keepdims=True) - ops.sum(w * w, axis=2, keepdims=True)
        return self.W_dec - w * (along * ops.reshape(self.projection, (-1, 1, 1)))

    def _static_k(self, name: str = "_k_max") -> int | None:
        # Read only where top_k needs it: a compiled step that reads a Python number recompiles when it changes.
        return getattr(self, name) if self.selects_with_top_k else None

    def _params(self, k_max: int | None, own=ops.convert_to_tensor):
        """The kernel's ``params``: each member's sparsity (k), the static ``k_max`` of ``top_k`` (or None:
        the bisection), and the method's stacked variables and settings (``own`` picks members' slices)."""
        names = self.kernel.variables + self.kernel.settings
        return {"k": own(self.sparsity_values), "k_max": k_max, **{name: own(getattr(self, name)) for name in names}}

    def call(self, positions, training=False):
        z = (self._inputs(positions) - self.norm_mean[:, None, :]) / self.norm_std[:, None, :]
        pre = ops.einsum("nbd,ndm->nbm", z - self.b_dec[:, None, :], self.W_enc) + self.b_enc[:, None, :]
        if self.raises_bias:  # a copy: compute_loss assigns the offset, which torch must not see change in place
            pre = pre + ops.copy(self.bias_offset)[:, None, :]
        # Always the training path (BatchTopK's batch cut and threshold update): the bank only trains.
        codes, aux, updates = self.kernel.activate(pre, self._params(self._static_k()), True)
        common.apply_updates({name: getattr(self, name) for name in updates}, updates)
        decoder = self._decoder()
        z_hat = ops.einsum("nbm,nmd->nbd", codes, decoder) + self.b_dec[:, None, :]
        object.__setattr__(self, "_step_cache", (z_hat, z, pre, codes, aux, decoder))
        return z_hat

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if sample_weight is not None:
            raise ValueError("a bank trains without sample weights")
        cache = self.__dict__.get("_step_cache")
        object.__setattr__(self, "_step_cache", None)
        if cache is None or cache[0] is not y_pred:
            self(x, training=training)
            cache = self.__dict__["_step_cache"]
            object.__setattr__(self, "_step_cache", None)
        z_hat, z, pre, codes, aux, decoder = cache

        batch = common.BatchMeans(codes)
        errors = ops.sum(ops.square(z_hat - z), axis=-1)  # (N, B)
        reconstruction = batch(errors)  # (N,)
        # A copy when the controller assigns the variable below: torch must not see a tensor it saved for
        # the backward pass change in place.
        coefficients = ops.copy(self.sparsity_values) if any(self.controlled) else self.sparsity_values
        sparsity = self.kernel.penalty(codes, aux, coefficients, batch)
        loss = reconstruction + sparsity
        if training:
            fired = ops.any(ops.greater(codes, 0), axis=1)  # (N, m)
            idle = ops.convert_to_tensor(self.idle_steps)
            self.idle_steps.assign(ops.where(fired, ops.zeros_like(idle), idle + 1.0))
            if self.raises_bias:
                control = ops.convert_to_tensor(self.bias_control)
                update_bias_floor(self.fire_rate, self.bias_offset, codes, *(control[j][:, None] for j in range(3)))
        extra = []
        if self.uses_auxk:
            term, logged, dead = self._auxk(z, pre, z_hat, decoder, batch)
            loss = loss + self.auxk_coefficients * term
            uses = ops.cast(ops.greater(self.auxk_coefficients, 0.0), term.dtype)
            extra = [logged * uses, dead * uses]
        if any(self.ghosts):
            loss = loss + self.ghost_on * ghost_grads_loss(pre, self._dead(), decoder, z - z_hat, errors, batch)
        l0 = ops.mean(ops.sum(ops.cast(ops.not_equal(codes, 0), codes.dtype), axis=-1), axis=1)
        if training and any(self.controlled):  # the next step's coefficients (this one's are spent)
            self.sparsity_values.assign(common.controlled_coefficient(
                self.sparsity_values, l0, self.target_l0s, self.l0_gains))
        self.member_means.update_state((loss, reconstruction, sparsity, l0, *extra))
        return ops.sum(loss)

    def _auxk(self, z, pre, z_hat, decoder, batch):
        """AuxK (:func:`~collapse_tui.nn.methods.common.auxk_loss`), per member: (term, logged error, dead
        fraction)."""
        dead = self._dead()
        aux_codes = common.auxk_codes(pre, dead, self.auxk_ks, self._static_k("_auxk_k_max"), self.auxk_smooth)
        aux_reconstruction = ops.einsum("nbm,nmd->nbd", aux_codes, decoder)
        return common.auxk_loss(z, z_hat, aux_reconstruction, dead, batch)

    def _dead(self):
        """Each member's neurons idle for its ``dead_steps`` (N, m)."""
        return ops.greater_equal(ops.convert_to_tensor(self.idle_steps), self.dead_steps[:, None])

    @property
    def metrics(self):
        return [self.member_means]

    # ------------------------------------------------------------------ inference
    # At most this many bytes of codes and reconstructions are computed in one pass (the members asked
    # for are split into passes under it): each member's outputs are needed on the host at once.
    OUTPUTS_PER_PASS_BYTES = 512 * 2**20

    def member_outputs(self, inputs: Mapping[int, np.ndarray], batch_size: int = 1024
                       ) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
        """``(member, codes, reconstruction)`` of each member's ``inputs[member]`` (rows of input_dim), as
        that member copied out would give them (:meth:`SparseAutoencoder.codes` and
        :meth:`~SparseAutoencoder.reconstruct`: inference, with the member's current k or thresholds),
        float32 numpy arrays, in the order of ``inputs``.

        Members are computed together, in passes of batched matmuls over every member at once, rather
        than one ``predict`` each; their inputs may differ in number (each is padded to the largest
        for its pass). Top-k's cut is the exact k-th largest value, as alone, by the bisection under
        TensorFlow and JAX (traced, no sort) and by ``top_k`` under torch (eager); outputs therefore
        equal a lone SAE's up to float32 rounding (sums in another order), which can move an entry that
        ties its row's cut within that rounding.
        """
        asked = {int(i): np.asarray(x, np.float32) for i, x in inputs.items()}
        for i, x in asked.items():
            if not 0 <= i < self.n_members:
                raise ValueError(f"member must be in 0..{self.n_members - 1}, got {i}")
            if x.ndim != 2 or x.shape[1] != self.input_dim:
                raise ValueError(f"member {i}'s inputs must have shape (n, {self.input_dim}), got {x.shape}")
        members = list(asked)
        most_rows = max((len(x) for x in asked.values()), default=0)
        per_member = max(1, most_rows) * (self.n_neurons + self.input_dim) * 4
        per_pass = max(1, self.OUTPUTS_PER_PASS_BYTES // per_member)
        for start in range(0, len(members), per_pass):
            group = tuple(members[start:start + per_pass])
            rows = max(len(asked[i]) for i in group)
            if rows == 0:
                for i in group:
                    yield i, np.zeros((0, self.n_neurons), np.float32), np.zeros((0, self.input_dim), np.float32)
                continue
            x = np.zeros((rows, len(group), self.input_dim), np.float32)  # rows first: predict batches them
            for g, i in enumerate(group):
                x[:len(asked[i]), g] = asked[i]
            codes, reconstruction = inference_view(self, "infer", members=group).predict(
                x, batch_size=batch_size, verbose=0)
            for g, i in enumerate(group):
                n = len(asked[i])
                yield (i, np.ascontiguousarray(codes[:n, g], np.float32),
                       np.ascontiguousarray(reconstruction[:n, g], np.float32))

    def infer(self, x, members: Sequence[int]):
        """Inference of ``members`` on ``x`` (B, len(members), input_dim), one slice per member: their codes
        (B, G, n_neurons) and reconstructions in the input space (B, G, input_dim). See
        :meth:`member_outputs`."""
        index = None if tuple(members) == tuple(range(self.n_members)) else np.asarray(members, "int32")

        def own(variable):  # the members' slices of a stacked variable
            value = ops.convert_to_tensor(variable)
            return value if index is None else ops.take(value, index, axis=0)

        mean, std, b_dec = own(self.norm_mean)[:, None, :], own(self.norm_std)[:, None, :], own(self.b_dec)[:, None, :]
        z = (ops.transpose(ops.cast(x, "float32"), (1, 0, 2)) - mean) / std  # (G, B, d)
        pre = ops.einsum("gbd,gdm->gbm", z - b_dec, own(self.W_enc)) + own(self.b_enc)[:, None, :]
        pre = pre + own(self.bias_offset)[:, None, :] if self.raises_bias else pre
        # Eager under torch (a view's predict is not compiled there), where top_k is the faster.
        k_max = self._k_max if keras.backend.backend() == "torch" else None
        codes = self.kernel.infer(pre, self._params(k_max, own))
        z_hat = ops.einsum("gbm,gmd->gbd", codes, own(self.W_dec)) + b_dec
        return ops.transpose(codes, (1, 0, 2)), ops.transpose(z_hat * std + mean, (1, 0, 2))
