"""``data_parallel: true``: the VAE and the SAE bank train over every local device (JAX's DataParallel),
to the same loss curves as on one device; elsewhere, or with settings that cannot split, runs fail at
once with a one-line reason."""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from collapse_tui import events as ev
from collapse_tui import report
from collapse_tui.config import ConfigError, validate
from collapse_tui.engine.banks import bank_groups
from collapse_tui.engine.distribution import check_data_parallel, training_devices
from collapse_tui.engine.environment import environment
from collapse_tui.engine.runner import Engine
from collapse_tui.engine.vae_phase import vae_key
from collapse_tui.store import RunRecord
from tests.helpers import tiny_config

# The outcome depends on the Keras backend: CI runs this module on every backend.
pytestmark = pytest.mark.backend

BACKEND = keras.backend.backend()
REPO = Path(__file__).resolve().parents[2]


# ------------------------------------------------------------------ the setting

def test_data_parallel_is_an_off_by_default_switch(tmp_path):
    assert validate(tiny_config(tmp_path)).data_parallel is False
    assert validate(tiny_config(tmp_path, data_parallel=True)).data_parallel is True
    with pytest.raises(ConfigError, match="data_parallel"):
        validate(tiny_config(tmp_path, data_parallel="sometimes"))


def test_data_parallel_changes_how_models_train_not_which(tmp_path):
    one, split = validate(tiny_config(tmp_path)), validate(tiny_config(tmp_path, data_parallel=True))
    # A cached VAE serves both ways of training it; a results table pools their runs into one row.
    assert vae_key(one, "data") == vae_key(split, "data")
    records = [RunRecord(tmp_path / name, config=cfg.to_dict()) for name, cfg in (("a", one), ("b", split))]
    assert report.experiment_settings(records[0]) == report.experiment_settings(records[1])
    # But one bank trains one way: runs that differ in it never share a bank.
    assert bank_groups([one, split, one]) == [[0, 2], [1]]


def test_a_run_records_the_one_device_it_trains_on():
    env = environment()
    assert env["data_parallel"] is False
    assert env["devices"] == training_devices(False) and len(env["devices"]) == 1
    assert ":" in env["devices"][0]  # "<platform>:<id>", as keras.distribution names devices


def test_nothing_is_checked_without_data_parallel(tmp_path):
    check_data_parallel([validate(tiny_config(tmp_path, vae={"batch_size": 33}))])  # no error


# ------------------------------------------------------------------ backends without it

@pytest.mark.skipif(BACKEND == "jax", reason="JAX supports data_parallel (tested below, on two devices)")
def test_data_parallel_outside_jax_is_refused_in_one_line_naming_jax(tmp_path):
    config = validate(tiny_config(tmp_path, data_parallel=True))
    with pytest.raises(ValueError) as refused:
        check_data_parallel([config])
    message = str(refused.value)
    assert message.startswith("data_parallel needs the JAX backend (KERAS_BACKEND=jax): ") and "\n" not in message
    assert {"tensorflow": "MirroredStrategy", "torch": "torch"}[BACKEND] in message

    # A run asked for it anyway fails before it reads data or trains anything, with that reason.
    seen = []
    result = Engine().run(config, [seen.append])
    assert result.status == "failed" and result.summary["reason"] == f"ValueError: {message}"
    assert not [e for e in seen if isinstance(e, (ev.PhaseStarted, ev.EpochEnd))]


# ------------------------------------------------------------------ JAX on two devices

# Runs in a fresh interpreter: XLA_FLAGS must be set before JAX starts to split the CPU into two devices.
# Prints one JSON line: per run, its status, recorded devices, loss curves and the devices its models'
# variables were laid out on when they trained.
TWO_DEVICE_SCRIPT = r"""
import json, sys

import jax

from collapse_tui import events as ev
from collapse_tui.config import validate
from collapse_tui.engine.distribution import check_data_parallel
from collapse_tui.engine.runner import Engine
from collapse_tui.nn import ConvVAE
from collapse_tui.nn.sae_bank import SAEBank

laid_out = []

def recording(fit):
    def fit_and_record(model, *args, **kwargs):
        laid_out.append(len(model.trainable_variables[0].value.sharding.device_set))
        return fit(model, *args, **kwargs)
    return fit_and_record

ConvVAE.fit, SAEBank.fit = recording(ConvVAE.fit), recording(SAEBank.fit)

configs = json.loads(sys.argv[1])
out = {"jax_devices": len(jax.devices()), "runs": {}, "refused": {}}
for name, data in configs["runs"].items():
    seen, laid_out[:] = [], []
    result = Engine().run(validate(data), [seen.append])
    epochs = lambda phase: [e.logs["loss"] for e in seen if isinstance(e, ev.EpochEnd) and e.phase == phase]
    out["runs"][name] = {"status": result.status, "reason": result.summary.get("reason"),
                         "environment": seen[0].environment, "vae": epochs("vae"), "sae": epochs("sae"),
                         "laid_out": list(laid_out), "trained": any(isinstance(e, ev.PhaseStarted) for e in seen)}
for name, data in configs["refused"].items():
    try:
        check_data_parallel([validate(data)])
        out["refused"][name] = None
    except ValueError as exc:
        out["refused"][name] = str(exc)
print(json.dumps(out))
"""

# float32 sums of a batch split in two are added in another order (each device's half, then the halves):
# a few ulps (1e-7) per reduction, carried through a few Adam steps. Measured: the VAE's loss equal to the
# bit, the SAE's within 8e-8 relative. A gradient that differs in substance (a replica's own half-batch's,
# summed over replicas, as MirroredStrategy computes it) moves the SAE's second epoch by 7%.
RTOL = 1e-4


@pytest.mark.skipif(BACKEND != "torch", reason="the command line forces torch: one pass is enough")
def test_the_batch_flag_sets_it_for_every_run_and_refuses_before_anything_runs(tmp_path):
    import yaml

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config(tmp_path)))  # data_parallel is off in the file
    out = subprocess.run([sys.executable, "-m", "collapse_tui", "--batch", str(path), "--data-parallel",
                          "--backend", "torch"], cwd=REPO, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == "collapse-tui: data_parallel needs the JAX backend (KERAS_BACKEND=jax): Keras has no " \
                                 "data-parallel distribution for torch"
    assert not (tmp_path / "runs").exists()


@pytest.fixture(scope="module")
def two_devices(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("data-parallel")
    # 63 evaluation images: the evaluation's predictions (outside the distribution) need not split in two.
    tiny = dict(eval={"n_samples": 63})
    runs = {"one": tiny_config(tmp / "one", **tiny), "two": tiny_config(tmp / "two", data_parallel=True, **tiny),
            "odd_batch": tiny_config(tmp / "odd", data_parallel=True, vae={"batch_size": 33})}
    refused = {"vae_batch": tiny_config(tmp, data_parallel=True, vae={"batch_size": 33}),
               "n_train": tiny_config(tmp, data_parallel=True, data={"n_train": 97}, sae={"batch_size": 31})}
    env = dict(os.environ, KERAS_BACKEND="jax", XLA_FLAGS="--xla_force_host_platform_device_count=2",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-c", TWO_DEVICE_SCRIPT, json.dumps({"runs": runs, "refused": refused})],
                          env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


jax_only = pytest.mark.skipif(BACKEND != "jax", reason="trains under JAX in a subprocess: run on the JAX pass only")


@jax_only
def test_two_devices_train_the_loss_curves_of_one(two_devices):
    assert two_devices["jax_devices"] == 2
    one, two = two_devices["runs"]["one"], two_devices["runs"]["two"]
    assert one["status"] == two["status"] == "ok", (one["reason"], two["reason"])
    assert len(one["vae"]) == 1 and len(one["sae"]) == 2
    for phase in ("vae", "sae"):
        a, b = np.array(one[phase]), np.array(two[phase])
        print(f"{phase} epoch losses, max relative difference 1 vs 2 devices: {np.max(np.abs(a - b) / np.abs(a)):.2e}")
        np.testing.assert_allclose(b, a, rtol=RTOL, err_msg=phase)


@jax_only
def test_two_devices_are_used_and_recorded(two_devices):
    one, two = two_devices["runs"]["one"], two_devices["runs"]["two"]
    assert two["environment"]["devices"] == ["cpu:0", "cpu:1"] and two["environment"]["data_parallel"] is True
    assert one["environment"]["devices"] == ["cpu:0"] and one["environment"]["data_parallel"] is False
    # The VAE and the SAE bank each trained with their weights on both devices; alone, on one.
    assert two["laid_out"] == [2, 2] and one["laid_out"] == [1, 1]


@jax_only
def test_settings_that_do_not_split_over_the_devices_are_refused_in_one_line(two_devices):
    refused = two_devices["refused"]
    assert refused["vae_batch"] == ("data_parallel: vae.batch_size 33 is not a multiple of the 2 devices "
                                    "(cpu:0, cpu:1) that each batch is split across")
    assert refused["n_train"] == (
        "data_parallel: sae.batch_size 31 is not a multiple of the 2 devices (cpu:0, cpu:1) that each batch is "
        "split across; data.n_train 97 is not a multiple of the 2 devices (cpu:0, cpu:1): an epoch's last batch "
        "would not split evenly")
    # A run with such a setting fails before it trains anything, with that reason.
    odd = two_devices["runs"]["odd_batch"]
    assert odd["status"] == "failed" and odd["reason"] == f"ValueError: {refused['vae_batch']}"
    assert not odd["trained"] and odd["laid_out"] == []
