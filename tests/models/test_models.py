"""ConvVAE and SparseAutoencoder on the current backend: forward passes against numpy, losses against
hand computation, training (fit with no targets), sparsity changes during fit, normalisation, config."""

import keras
import numpy as np
import pytest
from keras import ops

from collapse_tui import config as config_mod
from collapse_tui.config import K_METHODS
from collapse_tui.nn import ConvVAE, SparseAutoencoder, SparsitySchedule, SparsityScheduler

# The outcome depends on the Keras backend: CI runs this module on every backend.
pytestmark = pytest.mark.backend


def npy(t):
    return np.asarray(ops.convert_to_numpy(t))


def weights(model):
    return {w.path.split("/")[-1]: npy(w.value) for w in model.weights}


# --------------------------------------------------------------------------- VAE

@pytest.fixture(scope="module")
def images():
    rng = np.random.RandomState(0)
    return (rng.rand(8, 64, 64, 1) < 0.3).astype("uint8")


@pytest.fixture(scope="module")
def vae():
    return ConvVAE(seed=1, beta=4.0)


def test_vae_forward_shapes(vae, images):
    out = vae(images[:2])
    assert set(out) == {"logits", "mean", "log_var"}
    assert tuple(out["logits"].shape) == (2, 64, 64, 1)
    assert tuple(out["mean"].shape) == (2, 10) and tuple(out["log_var"].shape) == (2, 10)
    enc = vae.encode(images[:2])
    assert tuple(enc["hidden"].shape) == (2, 256)
    assert npy(enc["hidden"]).min() >= 0  # ReLU hidden layer
    np.testing.assert_allclose(npy(out["mean"]), npy(enc["mean"]), rtol=1e-6, atol=1e-6)
    # At inference the decoder reads the mean; in training it reads a sample around it.
    np.testing.assert_allclose(npy(out["logits"]), npy(vae.decode(enc["mean"])), rtol=1e-5, atol=1e-5)
    sampled = vae(images[:2], training=True)
    assert not np.allclose(npy(sampled["logits"]), npy(out["logits"]))


def test_vae_loss_is_bernoulli_plus_beta_kl(vae, images):
    x = images[:4]
    out = vae(x)
    loss = float(npy(vae.compute_loss(x=x, y_pred=out)))
    logits = npy(out["logits"]).astype(np.float64)
    t = x.astype(np.float64)
    bce = (np.log1p(np.exp(-np.abs(logits))) + np.maximum(logits, 0) - logits * t).reshape(4, -1).sum(1).mean()
    mean, log_var = npy(out["mean"]).astype(np.float64), npy(out["log_var"]).astype(np.float64)
    kl = (0.5 * (np.exp(log_var) + mean ** 2 - 1 - log_var).sum(1)).mean()
    assert np.isfinite(loss)
    assert loss == pytest.approx(bce + 4.0 * kl, rel=1e-5)


def test_vae_fits_uint8_images_without_targets(images):
    vae = ConvVAE(seed=2, beta=2.0)
    vae.compile(optimizer=keras.optimizers.Adam(1e-3))
    before = vae.get_weights()
    history = vae.fit(images, epochs=1, batch_size=4, verbose=0).history
    assert set(history) == {"loss", "reconstruction", "kl"}
    loss, rec, kl = (history[k][0] for k in ("loss", "reconstruction", "kl"))
    assert all(np.isfinite(v) for v in (loss, rec, kl))
    assert loss == pytest.approx(rec + 2.0 * kl, rel=1e-5)
    # At initialisation logits are near 0: about log(2) nats per pixel, nothing crazy.
    assert 0.3 * 4096 * np.log(2) < rec < 3 * 4096 * np.log(2) and kl >= 0
    assert any(not np.allclose(w0, w1) for w0, w1 in zip(before, vae.get_weights()))


def test_vae_representation_matches_encode_in_any_batch_size(vae, images):
    enc = vae.encode(images)
    hidden = vae.representation(images, source="encoder_hidden", batch_size=3)
    means = vae.representation(images, source="latent_mean")
    assert hidden.dtype == np.float32 and hidden.shape == (8, 256)
    assert means.dtype == np.float32 and means.shape == (8, 10)
    np.testing.assert_allclose(hidden, npy(enc["hidden"]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(means, npy(enc["mean"]), rtol=1e-5, atol=1e-5)
    assert vae.representation(images[:0]).shape == (0, 256)


def test_vae_reconstruct_logits_from_images_or_a_representation(vae, images):
    logits = vae.reconstruct_logits(images[:3], batch_size=2)
    np.testing.assert_allclose(logits, npy(vae(images[:3])["logits"]), rtol=1e-5, atol=1e-4)
    hidden = vae.representation(images[:3])
    means = vae.representation(images[:3], source="latent_mean")
    np.testing.assert_allclose(vae.reconstruct_logits(representation=hidden, source="encoder_hidden"), logits,
                               rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(vae.reconstruct_logits(representation=means, source="latent_mean"), logits,
                               rtol=1e-5, atol=1e-4)


def test_vae_input_scale_is_applied_inside_the_model(images):
    raw = (images * 255).astype("uint8")
    a = ConvVAE(seed=3, input_scale=1 / 255)
    b = ConvVAE(seed=3, input_scale=1.0)
    b.set_weights(a.get_weights())
    np.testing.assert_allclose(a.representation(raw), b.representation(images), rtol=1e-5, atol=1e-5)
    x = raw[:2]
    loss_a = float(npy(a.compute_loss(x=x, y_pred=a(x))))
    loss_b = float(npy(b.compute_loss(x=images[:2], y_pred=b(images[:2]))))
    assert loss_a == pytest.approx(loss_b, rel=1e-5)


@pytest.mark.parametrize("kwargs, message", [
    ({"image_shape": (60, 64, 1)}, "multiples of 16"),
    ({"image_shape": (64, 64)}, "image_shape must be"),
    ({"latent_dim": 0}, "latent_dim must be a whole number >= 1"),
    ({"beta": -1.0}, "beta must be a finite number >= 0"),
    ({"input_scale": 0}, "input_scale must be a finite number > 0"),
    ({"seed": -2}, "seed must be None or a whole number >= 0"),
])
def test_vae_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ConvVAE(**kwargs)


def test_vae_host_helpers_reject_bad_input(vae, images):
    with pytest.raises(ValueError, match="source must be one of encoder_hidden, latent_mean"):
        vae.representation(images, source="logits")
    with pytest.raises(ValueError, match="x must have shape"):
        vae.representation(images[:, :32])
    with pytest.raises(ValueError, match="batch_size"):
        vae.representation(images, batch_size=0)
    with pytest.raises(ValueError, match=r"representation must have shape \(n, 10\)"):
        vae.reconstruct_logits(representation=np.zeros((2, 256)), source="latent_mean")
    with pytest.raises(ValueError, match="needs images x or a representation"):
        vae.reconstruct_logits()


def test_vae_config_round_trip(vae, images):
    config = vae.get_config()
    assert config["image_shape"] == [64, 64, 1] and config["beta"] == 4.0 and config["seed"] == 1
    clone = ConvVAE.from_config(config)
    clone.set_weights(vae.get_weights())
    np.testing.assert_allclose(clone.representation(images), vae.representation(images), rtol=1e-6, atol=1e-6)


def assert_same_model(built, expected):
    """Same config (the layer names aside: Keras numbers them) and the same initial weights."""
    config, expected_config = built.get_config(), expected.get_config()
    config.pop("name"), expected_config.pop("name")
    assert config == expected_config
    assert [w.path.split("/", 1)[-1] for w in built.weights] == [w.path.split("/", 1)[-1] for w in expected.weights]
    for w, e in zip(built.weights, expected.weights):
        np.testing.assert_array_equal(npy(w.value), npy(e.value), err_msg=w.path)


def test_vae_from_settings_equals_the_vae_built_from_keywords():
    settings = config_mod.validate({"vae": {"latent_dim": 4, "hidden_units": 32, "beta": 2.5}}).vae
    built = ConvVAE.from_settings(settings, (64, 64, 1), 1 / 255, seed=11)
    expected = ConvVAE(image_shape=(64, 64, 1), latent_dim=settings.latent_dim, hidden_units=settings.hidden_units,
                       beta=settings.beta, input_scale=1 / 255, seed=11)
    assert (built.latent_dim, built.hidden_units, built.beta, built.input_scale) == (4, 32, 2.5, 1 / 255)
    assert_same_model(built, expected)
    assert ConvVAE.from_settings(settings, (64, 64, 1), 1.0, seed=11, name="named").name == "named"


# --------------------------------------------------------------------------- SAE

def data(n=48, d=6, seed=0):
    rng = np.random.RandomState(seed)
    return (rng.normal(size=(n, d)) * np.linspace(0.5, 3.0, d) + np.linspace(-2.0, 5.0, d)).astype("float32")


def np_forward(sae, x):
    w = weights(sae)
    z = (x - w["norm_mean"]) / w["norm_std"]
    pre = (z - w["b_dec"]) @ w["W_enc"] + w["b_enc"]
    act = np.maximum(pre, 0)
    if sae.method == "topk":
        kth = -np.sort(-act, axis=1)[:, sae.k - 1:sae.k]
        act = np.where(act >= kth, act, 0)
    z_hat = act @ w["W_dec"] + w["b_dec"]
    return z, act, z_hat, z_hat * w["norm_std"] + w["norm_mean"]


@pytest.mark.parametrize("method", ["topk", "l1"])
@pytest.mark.parametrize("normalization", ["none", "standardise"])
def test_sae_forward_matches_numpy(method, normalization):
    x = data()
    sae = SparseAutoencoder(6, n_neurons=12, method=method, k=3, normalization=normalization, seed=4)
    sae.adapt(x)
    _, act, _, recon = np_forward(sae, x)
    np.testing.assert_allclose(npy(sae.encode(x)), act, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(npy(sae(x)), recon, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(npy(sae.decode(act)), recon, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(sae.codes(x, batch_size=5), act, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(sae.reconstruct(x, batch_size=7), recon, rtol=1e-4, atol=1e-4)
    # The host's pre-activations are the forward pass's, before its ReLU (and Top-k's cut).
    pre = sae.pre_activations(x)
    assert pre.dtype == np.float32 and pre.shape == (len(x), 12)
    w = weights(sae)
    expected = ((x - w["norm_mean"]) / w["norm_std"] - w["b_dec"]) @ w["W_enc"] + w["b_enc"]
    np.testing.assert_allclose(pre, expected, rtol=1e-4, atol=1e-4)
    if method == "l1":
        np.testing.assert_allclose(np.maximum(pre, 0), act, rtol=1e-4, atol=1e-4)


def test_sae_decoder_starts_at_unit_norm():
    sae = SparseAutoencoder(6, n_neurons=12, k=3, seed=0)
    np.testing.assert_allclose(np.linalg.norm(weights(sae)["W_dec"], axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("normalization", ["none", "centre", "unit_norm", "standardise"])
def test_sae_normalisation_statistics_equal_numpys(normalization):
    x = data()
    x[:, 2] = 7.0  # a constant feature: standardising only centres it
    x[:, 3] = x[:, 3] * 1e-4 + 1.0  # a near-constant one: standardising divides it by 1% of the typical spread
    sae = SparseAutoencoder(6, n_neurons=8, k=2, normalization=normalization)
    sae.adapt(x)
    w = weights(sae)
    x64 = x.astype(np.float64)
    mean = x64.mean(0) if normalization in ("centre", "standardise") else np.zeros(6)
    std = np.ones(6)
    if normalization == "standardise":
        spread = x64.std(0)
        floor = 0.01 * np.sqrt(np.mean(spread ** 2))
        assert spread[3] < floor  # the guard is what sets unit 3's divisor
        std = np.maximum(spread, floor)
        std[2] = 1.0
    elif normalization == "unit_norm":  # one scalar: the inputs' root mean squared norm
        std = np.full(6, np.sqrt(np.mean(np.sum(x64 ** 2, axis=1))))
        np.testing.assert_allclose(np.mean(np.sum((x64 / std) ** 2, axis=1)), 1.0, rtol=1e-12)
    np.testing.assert_allclose(w["norm_mean"], mean, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(w["norm_std"], std, rtol=1e-6)
    # b_dec starts at the mean of the normalised data.
    np.testing.assert_allclose(w["b_dec"], ((x - mean) / std).mean(0), rtol=1e-5, atol=1e-5)
    # Reconstruction comes back in the original space: a perfect code would return x itself.
    z_hat = (x - mean) / std
    np.testing.assert_allclose(z_hat * w["norm_std"] + w["norm_mean"], x, rtol=1e-5, atol=1e-5)


def test_sae_adapt_rejects_bad_data():
    sae = SparseAutoencoder(6, n_neurons=8, k=2, normalization="standardise")
    with pytest.raises(ValueError, match=r"x must have shape \(n_samples, 6\)"):
        sae.adapt(np.zeros((4, 5)))
    bad = data()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        sae.adapt(bad)


@pytest.mark.parametrize("method", ["topk", "l1"])
def test_sae_loss_matches_hand_computation(method):
    x = data(n=10)
    sae = SparseAutoencoder(6, n_neurons=12, method=method, k=4, l1_coefficient=0.05, normalization="centre",
                            seed=5)
    sae.adapt(x)
    loss = float(npy(sae.compute_loss(x=x, y_pred=sae(x))))
    z, act, z_hat, _ = np_forward(sae, x)
    reconstruction = ((z_hat - z) ** 2).sum(1).mean()
    sparsity = 0.05 * np.abs(act).sum(1).mean() if method == "l1" else 0.0
    assert loss == pytest.approx(reconstruction + sparsity, rel=1e-4)
    assert float(npy(sae.metrics[1].result())) == pytest.approx(reconstruction, rel=1e-4)
    assert float(npy(sae.metrics[2].result())) == pytest.approx(sparsity, rel=1e-4, abs=1e-7)
    # Sample weights: weight 1 on the first sample alone is that sample's loss.
    w = np.zeros(10, "float32")
    w[0] = 1
    one = float(npy(sae.compute_loss(x=x, y_pred=sae(x), sample_weight=w)))
    single = ((z_hat[0] - z[0]) ** 2).sum() + (0.05 * np.abs(act[0]).sum() if method == "l1" else 0.0)
    assert one == pytest.approx(single, rel=1e-4)


def _fitted_sae(method, **kwargs):
    x = data(n=64, seed=1)
    sae = SparseAutoencoder(6, n_neurons=16, method=method, seed=6, **kwargs)
    sae.adapt(x)
    return sae, x


def test_sae_topk_fit_keeps_unit_norm_dictionary_and_k_active():
    sae, x = _fitted_sae("topk", k=3, normalization="standardise")
    sae.compile(optimizer=keras.optimizers.Adam(0.05))
    before = weights(sae)["W_dec"]
    history = sae.fit(x, epochs=2, batch_size=16, verbose=0).history
    assert set(history) == {"loss", "reconstruction", "sparsity_loss", "l0"}
    assert history["sparsity_loss"] == [0.0, 0.0] and all(np.isfinite(history["loss"]))
    after = weights(sae)["W_dec"]
    assert np.abs(after - before).max() > 1e-3  # it trained: unit norm is not left over from init
    np.testing.assert_allclose(np.linalg.norm(after, axis=1), 1.0, atol=1e-5)
    assert (np.count_nonzero(sae.codes(x), axis=1) <= 3).all()


def test_sae_l1_fit_keeps_unit_norm_dictionary():
    sae, x = _fitted_sae("l1", l1_coefficient=0.01, normalization="centre")
    sae.compile(optimizer=keras.optimizers.Adam(0.05))
    history = sae.fit(x, epochs=2, batch_size=16, verbose=0).history
    assert all(v > 0 for v in history["sparsity_loss"])
    assert history["loss"][-1] == pytest.approx(history["reconstruction"][-1] + history["sparsity_loss"][-1],
                                                rel=1e-5)
    np.testing.assert_allclose(np.linalg.norm(weights(sae)["W_dec"], axis=1), 1.0, atol=1e-5)


def test_sae_k_changes_mid_fit_with_exactly_k_active_in_each_epoch():
    sae, x = _fitted_sae("topk", k=6)
    sae.b_enc.assign(np.full(16, 10.0, "float32"))  # every pre-activation positive: exactly k survive
    sae.compile(optimizer=keras.optimizers.Adam(1e-4))
    # Trace the inference functions with k = 6 first: they must be rebuilt when k changes.
    assert (np.count_nonzero(sae.codes(x), axis=1) == 6).all()
    assert sae.evaluate(x, verbose=0, return_dict=True)["l0"] == 6.0
    np.testing.assert_allclose(sae.reconstruct(x), np_forward(sae, x)[3], rtol=1e-4, atol=1e-4)
    schedule = SparsitySchedule("linear", start=6, end=2, epochs=3, integer=True)
    history = sae.fit(x, epochs=3, batch_size=16, verbose=0, callbacks=[SparsityScheduler(schedule)]).history
    assert history["l0"] == [6.0, 4.0, 2.0]
    assert history["sparsity"] == [6, 4, 2] and sae.sparsity == 2 and sae.k == 2
    np.testing.assert_array_equal(np.count_nonzero(sae.codes(x), axis=1), np.full(len(x), 2))
    assert sae.evaluate(x, verbose=0, return_dict=True)["l0"] == 2.0
    np.testing.assert_allclose(sae.reconstruct(x), np_forward(sae, x)[3], rtol=1e-4, atol=1e-4)


def test_sae_l1_coefficient_changes_mid_fit():
    sae, x = _fitted_sae("l1", l1_coefficient=0.1)
    sae.compile(optimizer=keras.optimizers.SGD(0.0))  # weights frozen: only the coefficient moves
    _, act, _, _ = np_forward(sae, x)
    per_sample = np.abs(act).sum(1).mean()
    schedule = SparsitySchedule("linear", start=0.1, end=0.4, epochs=2)
    history = sae.fit(x, epochs=2, batch_size=16, verbose=0, callbacks=[SparsityScheduler(schedule)]).history
    assert history["sparsity_loss"] == pytest.approx([0.1 * per_sample, 0.4 * per_sample], rel=1e-4)
    assert sae.sparsity == pytest.approx(0.4) and sae.l1_coefficient == pytest.approx(0.4)


class _CodesAtEpochEnd(keras.callbacks.Callback):
    def __init__(self, x):
        super().__init__()
        self.x, self.codes = x, []

    def on_epoch_end(self, epoch, logs=None):
        self.codes.append(self.model.codes(self.x))


def test_sae_host_helpers_work_inside_fit_callbacks():
    sae, x = _fitted_sae("topk", k=3)
    sae.compile(optimizer=keras.optimizers.Adam(0.01))
    probe = _CodesAtEpochEnd(x[:5])
    history = sae.fit(x, epochs=2, batch_size=16, verbose=0, callbacks=[probe]).history
    assert len(history["loss"]) == 2 and np.isfinite(history["loss"]).all()
    np.testing.assert_allclose(probe.codes[-1], sae.codes(x[:5]), rtol=1e-6, atol=1e-6)
    assert not np.allclose(probe.codes[0], probe.codes[1])  # training went on between the two epochs


def test_sae_set_sparsity_validation():
    topk = SparseAutoencoder(6, n_neurons=8, k=2)
    with pytest.raises(ValueError, match="at most the number of features \\(8\\)"):
        topk.set_sparsity(9)
    with pytest.raises(ValueError, match="k must be a whole number >= 1"):
        topk.set_sparsity(2.5)
    l1 = SparseAutoencoder(6, n_neurons=8, method="l1")
    with pytest.raises(ValueError, match="coefficient must be a finite number >= 0"):
        l1.set_sparsity(-1.0)


@pytest.mark.parametrize("kwargs, message", [
    ({"method": "relu"}, "method must be one of topk, l1"),
    ({"normalization": "whiten"}, "normalization must be one of none, unit_norm, standardise, centre"),
    ({"k": 9}, r"k must be at most n_neurons \(8\)"),
    ({"k": 0}, "k must be a whole number >= 1"),
    ({"input_dim": 0}, "input_dim must be a whole number >= 1"),
    ({"l1_coefficient": -1.0}, "coefficient must be a finite number >= 0"),
])
def test_sae_rejects_bad_arguments(kwargs, message):
    args = {"input_dim": 6, "n_neurons": 8, "k": 2, **kwargs}
    with pytest.raises(ValueError, match=message):
        SparseAutoencoder(**args)


@pytest.mark.parametrize("method", ["topk", "l1"])
def test_sae_config_round_trip_keeps_the_current_sparsity(method):
    x = data()
    sae = SparseAutoencoder(6, n_neurons=12, method=method, k=5, l1_coefficient=0.2, normalization="centre",
                            seed=7, name="probe")
    sae.adapt(x)
    sae.set_sparsity(2 if method == "topk" else 0.05)
    config = sae.get_config()
    clone = SparseAutoencoder.from_config(config)
    assert clone.name == "probe" and clone.sparsity == sae.sparsity and clone.normalization == "centre"
    clone.set_weights(sae.get_weights())
    np.testing.assert_allclose(clone.codes(x), sae.codes(x), rtol=1e-6, atol=1e-6)
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(sae))
    assert isinstance(revived, SparseAutoencoder) and revived.get_config() == config


# --------------------------------------------------------------------------- SAE from the schema's settings

def sae_from_keywords(c, input_dim, seed):
    """The autoencoder as the engine built it from ``RunConfig.sae`` before ``from_settings``, spelt out."""
    by_k = c.method in K_METHODS
    final = float(c.k) if by_k else c.l1_coefficient
    start = c.schedule.start if c.schedule.start is not None else final
    first = SparsitySchedule(kind=c.schedule.kind, start=start, end=final, epochs=c.schedule.epochs,
                             integer=by_k).value(0)
    r = c.remedies
    return SparseAutoencoder(input_dim=input_dim, n_neurons=c.n_neurons, method=c.method,
                             k=int(first) if by_k else c.k,
                             l1_coefficient=c.l1_coefficient if by_k else float(first),
                             normalization=c.normalization, seed=seed,
                             auxk=r.auxk, auxk_k=r.auxk_k, auxk_coefficient=r.auxk_coefficient,
                             dead_steps=r.dead_steps, tied_init=r.tied_init,
                             project_decoder_grads=r.project_decoder_grads,
                             geometric_median_init=r.geometric_median_init,
                             jumprelu_threshold=c.jumprelu_threshold, jumprelu_bandwidth=c.jumprelu_bandwidth,
                             batchtopk_momentum=c.batchtopk_threshold_momentum,
                             batchtopk_start=c.batchtopk_threshold_start)


@pytest.mark.parametrize("sae_settings, first", [
    ({"method": "topk", "k": 8, "normalization": "unit_norm", "schedule": {"kind": "linear", "start": 20, "epochs": 3},
      "remedies": {"auxk": True, "auxk_k": 16, "auxk_coefficient": 0.5, "dead_steps": 7, "tied_init": True,
                   "project_decoder_grads": True, "geometric_median_init": True}}, 20),
    ({"method": "topk", "k": 4, "remedies": {"auxk": True, "project_decoder_grads": True}}, 4),  # auxk_k: d / 2
    ({"method": "l1", "l1_coefficient": 0.01, "normalization": "standardise",
      "schedule": {"kind": "exponential", "start": 0.5, "epochs": 4}}, 0.5),
    ({"method": "batchtopk", "k": 6}, 6),  # no start: the schedule starts at the final value
    ({"method": "jumprelu", "l1_coefficient": 0.02, "jumprelu_threshold": 0.05, "jumprelu_bandwidth": 0.3,
      "schedule": {"kind": "cosine", "start": 0.2, "epochs": 5}}, 0.2),
])
def test_sae_from_settings_equals_the_sae_built_from_keywords_at_the_schedules_start(sae_settings, first):
    settings = config_mod.validate({"sae": {"n_neurons": 24, **sae_settings}}).sae
    built = SparseAutoencoder.from_settings(settings, input_dim=6, seed=13)
    assert built.method == settings.method and built.sparsity == pytest.approx(first)
    assert_same_model(built, sae_from_keywords(settings, 6, 13))
    # Another seed gives other weights, so the comparison above does tell seeds apart.
    other = SparseAutoencoder.from_settings(settings, input_dim=6, seed=14)
    assert not np.array_equal(npy(other.W_enc.value), npy(built.W_enc.value))
