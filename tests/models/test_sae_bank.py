"""A bank of SAEs trains each member exactly as that SAE trains alone (same data order, same seed)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from collapse_tui.nn import SparseAutoencoder
from collapse_tui.nn.resampling import optimizer_slots
from collapse_tui.engine.torch_bank import prepare_bank
from collapse_tui.nn.sae_bank import SAEBank

# The outcome depends on the Keras backend: CI runs this module on every backend.
pytestmark = pytest.mark.backend

# Float32 sums in another order (einsum against matmul) differ in the last bits; over a few dozen Adam
# steps that stays below this (measured: <= 1.2e-7 on TensorFlow and JAX, exactly 0 on torch).
ATOL = 2e-5
WEIGHTS = ("W_enc", "W_dec", "b_enc", "b_dec", "idle_steps")


def npy(value):
    return keras.ops.convert_to_numpy(value)


def data(n=96, d=12, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, d)) @ rng.normal(size=(d, d))).astype("float32")


# Per method, three members that differ in seed, sparsity, normalisation, AuxK, ghost grads, the data
# initialisation and decoder projection.
MEMBERS = {
    "topk": [dict(k=4, seed=1), dict(k=6, seed=2, auxk=True, dead_steps=3, auxk_coefficient=0.5, auxk_k=3),
             dict(k=3, seed=3, project_decoder_grads=True, normalization="standardise", ghost_grads=True,
                  dead_steps=2)],
    "batchtopk": [dict(k=4, seed=1), dict(k=2, seed=2, normalization="centre", threshold_momentum=0.1)],
    "l1": [dict(l1_coefficient=0.01, seed=1), dict(l1_coefficient=0.05, seed=2, auxk=True, dead_steps=2,
                                                   auxk_candidates="softplus"),
           dict(l1_coefficient=0.002, seed=3, normalization="centre", project_decoder_grads=True)],
    "jumprelu": [dict(l1_coefficient=0.01, seed=1), dict(l1_coefficient=0.1, seed=2, jumprelu_bandwidth=0.05,
                                                         jumprelu_threshold=0.05, data_init=True)],
}


def build(method, spec, x, dead=()):
    spec = dict(spec)
    momentum = spec.pop("threshold_momentum", None)
    sae = SparseAutoencoder(input_dim=x.shape[1], n_neurons=20, method=method, **spec)
    if momentum is not None:
        sae.topk.threshold_momentum = momentum
    sae.adapt(x)
    if dead:  # neurons that can never fire: AuxK then has dead neurons to train
        b_enc = npy(sae.b_enc).copy()
        b_enc[list(dead)] = -100.0
        sae.b_enc.assign(b_enc)
    return sae


def sparsity(method, spec, epoch, epochs):
    """A schedule per member: k (or the coefficient) falls to the member's value by the last epoch."""
    if method in ("topk", "batchtopk"):
        return spec["k"] + (epochs - 1 - epoch)
    return spec["l1_coefficient"] * (1 + (epochs - 1 - epoch))


def train_alone(method, spec, x, orders, epochs, batch_size, dead=()):
    sae = build(method, spec, x, dead)
    sae.compile(optimizer=keras.optimizers.Adam(1e-2))
    losses = []
    for epoch in range(epochs):
        sae.set_sparsity(sparsity(method, spec, epoch, epochs))
        history = sae.fit(x[orders[epoch]], epochs=1, batch_size=batch_size, shuffle=False, verbose=0)
        losses.append(history.history["loss"][-1])
    return sae, losses


class _Feed(keras.callbacks.Callback):
    def __init__(self, bank, method, specs, orders, epochs):
        super().__init__()
        self.bank, self.method, self.specs, self.orders, self.epochs = bank, method, specs, orders, epochs

    def on_epoch_begin(self, epoch, logs=None):
        self.bank.set_sparsities([sparsity(self.method, s, epoch, self.epochs) for s in self.specs])
        self.bank.set_orders([o[epoch] for o in self.orders])


def train_bank(method, specs, xs, orders, epochs, batch_size, dead=()):
    bank = SAEBank([build(method, s, x, dead) for s, x in zip(specs, xs)], xs)
    bank.compile(optimizer=keras.optimizers.Adam(1e-2))
    prepare_bank(bank)  # the step the engine trains with
    history = bank.fit(np.arange(len(xs[0])), epochs=epochs, batch_size=batch_size, shuffle=False, verbose=0,
                       callbacks=[_Feed(bank, method, specs, orders, epochs)])
    return bank, history.history


@pytest.mark.parametrize("method", sorted(MEMBERS))
def test_each_member_of_a_bank_trains_as_it_would_alone(method):
    specs = MEMBERS[method]
    epochs, batch = 3, 16
    # Two members read one array, the third its own (as runs of another seed read another VAE's codes).
    shared, other = data(), data(seed=1)
    xs = [shared, shared, other][:len(specs)]
    orders = [[np.random.RandomState(10 * i + e).permutation(len(shared)) for e in range(epochs)]
              for i in range(len(specs))]
    dead = (7, 11) if method in ("topk", "l1") else ()
    bank, history = train_bank(method, specs, xs, orders, epochs, batch, dead)
    for i, spec in enumerate(specs):
        alone, losses = train_alone(method, spec, xs[i], orders[i], epochs, batch, dead)
        member = bank.write_member(i, build(method, spec, xs[i]))
        for name in WEIGHTS:
            np.testing.assert_allclose(npy(getattr(member, name)), npy(getattr(alone, name)), atol=ATOL,
                                       err_msg=f"member {i} {name}")
        assert member.sparsity == alone.sparsity
        np.testing.assert_allclose([np.asarray(h)[i] for h in history["loss"]], losses, rtol=1e-5)
        if method == "batchtopk":
            np.testing.assert_allclose(npy(member.topk.threshold), npy(alone.topk.threshold), atol=ATOL)
        if method == "jumprelu":
            np.testing.assert_allclose(npy(member.jumprelu.log_threshold), npy(alone.jumprelu.log_threshold),
                                       atol=ATOL)
        # The member, copied out, is an SAE like any other: same codes as the lone one.
        np.testing.assert_allclose(member.codes(xs[i]), alone.codes(xs[i]), atol=1e-4)
    if "auxk_loss" in history:
        # The member with AuxK had dead neurons to train (its logged term is positive), the others log 0.
        aux = np.asarray(history["auxk_loss"][-1])
        uses = np.array([bool(s.get("auxk")) for s in specs])
        assert (aux[uses] > 0).all() and (aux[~uses] == 0).all()


@pytest.mark.parametrize("method", sorted(MEMBERS))
def test_a_banks_one_pass_gives_each_member_the_codes_and_reconstruction_it_gives_alone(method, monkeypatch):
    specs = MEMBERS[method]
    epochs = 2
    shared, other = data(), data(seed=1)
    xs = [shared, shared, other][:len(specs)]
    orders = [[np.random.RandomState(10 * i + e).permutation(len(shared)) for e in range(epochs)]
              for i in range(len(specs))]
    # Trained first, so that BatchTopK has a threshold and JumpReLU thresholds of their own.
    bank, _ = train_bank(method, specs, xs, orders, epochs, 16)
    members = [bank.write_member(i, build(method, s, xs[i])) for i, s in enumerate(specs)]
    # Inputs of different sizes, asked for out of order, some members only; one pass, then several.
    inputs = {len(specs) - 1: data(n=40, seed=5), 0: data(n=57, seed=6)}
    for per_pass_bytes in (SAEBank.OUTPUTS_PER_PASS_BYTES, 1):
        monkeypatch.setattr(SAEBank, "OUTPUTS_PER_PASS_BYTES", per_pass_bytes)
        outputs = list(bank.member_outputs(inputs, batch_size=16))
        assert [i for i, _, _ in outputs] == list(inputs)
        for i, codes, reconstruction in outputs:
            alone = members[i]
            assert codes.shape == (len(inputs[i]), 20) and codes.dtype == np.float32
            np.testing.assert_allclose(codes, alone.codes(inputs[i]), atol=1e-5, err_msg=f"member {i}")
            np.testing.assert_allclose(reconstruction, alone.reconstruct(inputs[i]), atol=1e-5,
                                       err_msg=f"member {i}")
            # the members' own sparsity, not a neighbour's
            if method == "topk":
                assert (np.count_nonzero(codes, axis=1) <= specs[i]["k"]).all()
    assert not (outputs[0][1] == 0).all()
    with pytest.raises(ValueError, match="member must be in"):
        next(bank.member_outputs({len(specs): shared}))
    with pytest.raises(ValueError, match="inputs must have shape"):
        next(bank.member_outputs({0: shared[:, :5]}))


def test_a_member_that_diverges_leaves_the_others_untouched():
    x = data()
    specs = [dict(k=4, seed=1), dict(k=4, seed=2)]
    orders = [[np.arange(len(x))] * 2] * 2
    members = [build("topk", s, x) for s in specs]
    w = npy(members[1].W_enc).copy()
    w[0, 0] = np.nan  # member 1 starts broken
    members[1].W_enc.assign(w)
    bank = SAEBank(members, x)
    bank.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = bank.fit(np.arange(len(x)), epochs=2, batch_size=16, shuffle=False, verbose=0,
                       callbacks=[_Feed(bank, "topk", specs, orders, 2)])
    losses = np.asarray(history.history["loss"][-1])
    assert np.isfinite(losses[0]) and not np.isfinite(losses[1])
    alone, _ = train_alone("topk", specs[0], x, orders[0], 2, 16)
    member = bank.write_member(0, build("topk", specs[0], x))
    np.testing.assert_allclose(npy(member.W_enc), npy(alone.W_enc), atol=ATOL)


def test_resetting_a_members_optimizer_state_touches_only_its_neurons():
    x = data()
    bank = SAEBank([build("l1", dict(l1_coefficient=0.01, seed=s), x) for s in (1, 2)], x)
    bank.compile(optimizer=keras.optimizers.Adam(1e-2))
    bank.fit(np.arange(len(x)), epochs=1, batch_size=16, shuffle=False, verbose=0)
    before = {s.path: npy(s) for v in (bank.W_enc, bank.W_dec, bank.b_enc)
              for s in optimizer_slots(bank.optimizer, v)}
    bank.reset_optimizer_state(1, [3, 5])
    for v, index in ((bank.W_enc, np.s_[1, :, [3, 5]]), (bank.W_dec, np.s_[1, [3, 5]]), (bank.b_enc, np.s_[1, [3, 5]])):
        slots = optimizer_slots(bank.optimizer, v)
        assert len(slots) == 2  # Adam's two moments
        for s in slots:
            after = npy(s)
            assert (after[index] == 0).all()
            expected = before[s.path].copy()
            expected[index] = 0
            np.testing.assert_array_equal(after, expected)


def test_members_must_share_their_shape_and_method():
    x = data()
    with pytest.raises(ValueError, match="share input width, dictionary size and method"):
        SAEBank([build("topk", dict(k=4), x), build("l1", dict(), x)], x)
    with pytest.raises(ValueError, match="as many codes"):
        SAEBank([build("topk", dict(k=4), x), build("topk", dict(k=4), x)], [x, x[:50]])
    bank = SAEBank([build("topk", dict(k=4), x)], x)
    with pytest.raises(ValueError, match="whole numbers in 1..20"):
        bank.set_sparsities([21])
    with pytest.raises(ValueError, match="orders must have shape"):
        bank.set_orders([np.arange(10)])


# The k-th largest value's exactness (top_k and bisection): tests/models/test_methods.py.


@pytest.mark.skipif(keras.backend.backend() != "torch", reason="torch.compile is torch's")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's compiler uses torch.jit internally
def test_banks_compiled_with_torch_compile_train_as_eager_ones_and_a_new_k_recompiles_nothing(monkeypatch):
    import torch._dynamo

    # One compiled version per function: a bank that found the last bank's code cached would run eagerly.
    monkeypatch.setattr(torch._dynamo.config, "recompile_limit", 1)
    specs = MEMBERS["topk"]
    epochs, batch = 3, 16
    x = data()
    orders = [[np.random.RandomState(10 * i + e).permutation(len(x)) for e in range(epochs)]
              for i in range(len(specs))]
    eager, eager_history = train_bank("topk", specs, [x] * len(specs), orders, epochs, batch, dead=(7, 11))
    assert eager.selects_with_top_k
    graphs = []

    class CountGraphs(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            graphs.append(torch._dynamo.utils.counters["stats"]["unique_graphs"])

    for _ in range(2):  # the second bank, in the same process, compiles its own step again
        compiled = SAEBank([build("topk", s, x, (7, 11)) for s in specs], [x] * len(specs))
        compiled.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=True)
        prepare_bank(compiled)  # as the engine does: the lean step, a clean compile cache
        assert not compiled.selects_with_top_k  # the bisection: k is read from a variable, no static shape
        before = torch._dynamo.utils.counters["stats"]["unique_graphs"]
        graphs.clear()
        history = compiled.fit(np.arange(len(x)), epochs=epochs, batch_size=batch, shuffle=False, verbose=0,
                               callbacks=[_Feed(compiled, "topk", specs, orders, epochs), CountGraphs()])
        # Compiled in the first epoch; the schedule lowers every member's k each epoch (the largest k too),
        # and nothing compiles again.
        assert graphs[0] > before and graphs[1:] == [graphs[0]] * (epochs - 1), (before, graphs)
        for name in WEIGHTS:
            np.testing.assert_allclose(npy(getattr(compiled, name)), npy(getattr(eager, name)), atol=ATOL,
                                       err_msg=name)
        for key in eager_history:
            np.testing.assert_allclose(np.asarray(history.history[key]), np.asarray(eager_history[key]),
                                       rtol=1e-5, atol=1e-7, err_msg=key)
