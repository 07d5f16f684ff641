"""What the TUI tests share: run directories with fixed, hand-made events (no training), neuron
profiles for them, and an app on a scratch presets folder driven by a pilot."""

from __future__ import annotations

import math
import time
from pathlib import Path

from collapse_tui import config as config_mod
from collapse_tui import events as ev
from collapse_tui.store import RunWriter

T0 = 1_790_000_000.0  # a fixed clock: screenshots must not change from one test run to the next
ENVIRONMENT = {"collapse_tui": "0.1.0", "backend": "tensorflow", "device": "CPU", "keras": "3.15.1"}
FACTORS = ["shape", "scale", "orientation", "pos_x", "pos_y"]
THRESHOLDS = [0.0, 1e-6, 1e-3, 1e-2]


def run_config(tmp_path: Path, name: str, method: str, sparsity: float, epochs: int, n_neurons: int) -> dict:
    sae = {"n_neurons": n_neurons, "method": method, "epochs": epochs}
    sae["k" if method == "topk" else "l1_coefficient"] = int(sparsity) if method == "topk" else sparsity
    data = {"name": name, "seed": 3, "runs_dir": str(tmp_path / "runs"), "models_dir": str(tmp_path / "models"),
            "data": {"n_train": 96}, "vae": {"epochs": 3}, "sae": sae,
            "eval": {"n_samples": 64, "every": 1, "thresholds": THRESHOLDS}}
    return config_mod.validate(data).to_dict()


def sae_metrics(epoch: int, epochs: int, n_neurons: int, dead_final: float, sparsity: float, mig: float) -> dict:
    """Deterministic metrics of one SAE evaluation: the dead fraction grows towards ``dead_final``."""
    progress = epoch / epochs
    dead_fraction = round(dead_final * progress, 4)
    n_dead = round(dead_fraction * n_neurons)
    nmi, best, mask = [], [], []
    for i in range(n_neurons):
        if i >= n_neurons - n_dead:
            nmi.append([0.0] * len(FACTORS))
            best.append(0)
            mask.append(False)
            continue
        row = [round(0.05 + 0.6 * ((i * 7 + j * 3) % 11) / 11 * (0.5 + progress / 2), 4) for j in range(len(FACTORS))]
        nmi.append(row)
        best.append(max(range(len(FACTORS)), key=lambda j: row[j]))
        mask.append(max(row) >= 0.3)
    counts = [0] * 20
    for i in range(n_neurons - n_dead):
        counts[10 + (i * 5) % 9] += 1
    dead = {f"dead@{t:g}": round(min(1.0, dead_fraction + 0.02 * k), 4) for k, t in enumerate(THRESHOLDS)}
    return {**dead, "dead_fraction": dead_fraction, "n_neurons": n_neurons,
            "l0": round(sparsity * (1 - 0.1 * progress), 3) if sparsity >= 1 else round(40 * (1 - progress / 2), 3),
            "mse": round(0.002 / (1 + epoch), 6), "explained_variance": round(0.9 + 0.01 * epoch, 4),
            "mig": round(mig * (0.6 + 0.4 * math.sin(epoch)), 4), "specialized": sum(mask),
            "density_histogram": {"counts": counts, "edges": [-5 + 0.25 * i for i in range(21)], "dead": n_dead},
            "nmi": nmi, "best_factor": best, "specialized_mask": mask, "sparsity": sparsity, "mig_vae": 0.0812}


def run_events(tmp_path: Path, run_dir: Path, name: str, method: str = "topk", sparsity: float = 8,
               epochs: int = 6, n_neurons: int = 40, dead_final: float = 0.4, mig: float = 0.05,
               status: str = "ok", upto: int | None = None) -> list[ev.Event]:
    """The events a run writes, at fixed times. ``status``: ok, stopped, failed (after 2 epochs) or
    running (no final event)."""
    cfg = run_config(tmp_path, name, method, sparsity, epochs, n_neurons)
    t = T0
    out: list[ev.Event] = [
        ev.RunStarted(run_id=run_dir.name, name=name, run_dir=str(run_dir), config=cfg,
                      environment=ENVIRONMENT, time=t),
        ev.PhaseStarted(phase="data", detail="96 training + 64 evaluation images of dsprites", time=t + 0.1),
        ev.PhaseStarted(phase="vae", detail="training the VAE (beta=4)", epochs=3, steps_per_epoch=3, time=t + 0.2),
    ]
    for e in range(1, 4):
        out.append(ev.Progress(phase="vae", done=3 * e, total=9, epoch=e, time=t + e))
        out.append(ev.EpochEnd(phase="vae", epoch=e, epochs=3, logs={"loss": 3000.0 - 400 * e + 20 * e * e,
                                                                   "reconstruction": 2900.0 - 380 * e, "kl": 5.0 * e},
                               seconds=1.0, time=t + e + 0.01))
    vae_nmi = [[round(0.1 + 0.05 * ((i + j) % 4), 4) for j in range(5)] for i in range(10)]
    out.append(ev.Evaluation(phase="vae", epoch=0, metrics={"mig": 0.0812, "bce": 2800.5, "active_latents": 4,
                                                            "nmi": vae_nmi, "factors": FACTORS}, time=t + 4))
    out.append(ev.PhaseStarted(phase="sae", detail=f"training the SAE ({method}, {n_neurons} neurons)",
                               epochs=epochs, steps_per_epoch=3, time=t + 5))
    last = epochs if status != "failed" else 2
    final = {}
    for e in range(1, last + 1):
        tt = t + 5 + e
        for step in (1, 2, 3):  # the per-step curve's points: each the mean over the steps since the last
            x = e - 1 + step / 3
            out.append(ev.Progress(phase="sae", done=3 * (e - 1) + step, total=3 * epochs, epoch=e, time=tt - 1 + step / 3,
                                   logs={"loss": round(0.01 / x + 0.001, 6), "reconstruction": round(0.01 / x, 6)}))
        out.append(ev.EpochEnd(phase="sae", epoch=e, epochs=epochs,
                               logs={"loss": round(0.01 / e + 0.001, 6), "reconstruction": round(0.01 / e, 6),
                                     "sparsity_loss": 0.001, "l0": float(sparsity),
                                     "dead_in_training": round(dead_final * e / epochs, 4)},
                               seconds=0.5, sparsity=float(sparsity), time=tt + 0.01))
        final = sae_metrics(e, epochs, n_neurons, dead_final, float(sparsity), mig)
        out.append(ev.Evaluation(phase="sae", epoch=e, metrics=final, time=tt + 0.02))
    summary = {"status": status, "run_id": run_dir.name, "name": name, "dataset": "dsprites", "method": method,
               "sparsity": float(sparsity), "n_neurons": n_neurons, "started": t, "finished": t + 20,
               "seconds": 20.0, "final": {k: v for k, v in final.items()
                                          if k not in ("nmi", "best_factor", "specialized_mask", "density_histogram")},
               "vae": {"mig": 0.0812, "bce": 2800.5}}
    if status in ("ok", "stopped"):
        out.append(ev.RunFinished(status=status, summary=summary, time=t + 20))
    elif status == "failed":
        out.append(ev.RunFailed(reason="RuntimeError: loss is NaN", summary=summary, time=t + 20))
    return out[:upto] if upto is not None else out


def make_run(tmp_path: Path, name: str, stamp: str = "20260101-120000", **kwargs) -> Path:
    """Write a whole fixture run directory ``runs/<stamp>-<name>`` and return its path."""
    run_dir = tmp_path / "runs" / f"{stamp}-{name}"
    run_dir.mkdir(parents=True)
    writer = RunWriter(run_dir)
    for event in run_events(tmp_path, run_dir, name, **kwargs):
        writer(event)
    writer.close()
    return run_dir


def make_runs(tmp_path: Path) -> dict[str, Path]:
    """Four runs and one unreadable directory: what the runs and compare screens are tested on."""
    runs = {
        "k8": make_run(tmp_path, "quick-topk-k8", "20260101-120000", method="topk", sparsity=8, dead_final=0.1,
                       mig=0.03),
        "k2": make_run(tmp_path, "quick-topk-k2", "20260101-120100", method="topk", sparsity=2, dead_final=0.5,
                       mig=0.02),
        "l1": make_run(tmp_path, "quick-l1-lam0.3", "20260101-120200", method="l1", sparsity=0.3, dead_final=0.7,
                       mig=0.01),
        "failed": make_run(tmp_path, "quick-l1-lam9", "20260101-120300", method="l1", sparsity=9.0, status="failed"),
    }
    broken = tmp_path / "runs" / "20260101-120400-broken"
    broken.mkdir()
    (broken / "config.yaml").write_text("name: [unclosed\n")
    runs["broken"] = broken
    return runs


def make_app(tmp_path: Path, **kwargs):
    from collapse_tui.tui.app import CollapseApp

    presets = tmp_path / "presets"
    presets.mkdir(exist_ok=True)
    return CollapseApp(presets_dir=presets, environment_label="test · CPU", **kwargs)


async def open_inspector(pilot, run_dir: Path) -> None:
    """Open ``run_dir`` and its neuron inspector, and wait until its images are drawn (in a worker, from
    the dataset the run read: the first time in a process renders it, which a busy machine makes slow)."""
    pilot.app.open_run(run_dir)
    await pilot.pause()
    await pilot.press("n")
    screen = pilot.app.screen
    await wait_for(pilot, lambda: "▀" in str(screen.query_one("#neuron-images").content), timeout=120)
    await pilot.pause()


async def wait_for(pilot, condition, timeout: float = 60.0, step: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await pilot.pause(step)


def add_neuron_profiles(run_dir: Path, n_neurons: int = 40, n_eval: int = 64) -> dict:
    """Give a fixture run the neurons.npz its final evaluation would write: profiles computed from
    made-up codes of procedural dSprites images (whose source the run's config then records)."""
    import numpy as np
    import yaml

    from collapse_tui.data import open_dataset
    from collapse_tui.metrics import decoder_neighbours, neuron_profiles
    from collapse_tui.store import write_neurons

    dataset = open_dataset("dsprites", source="procedural", cache=False)
    rng = np.random.default_rng(0)
    eval_indices = rng.choice(dataset.num_available, size=n_eval, replace=False).astype(np.int32)
    factors = dataset.index_to_factors(eval_indices)
    # Neuron i fires with the scale factor for i < 10, with pos_x for the next 10; the last 20 are dead.
    acts = np.zeros((n_eval, n_neurons), np.float32)
    for i in range(20):
        acts[:, i] = np.maximum(0, factors[:, 1 if i < 10 else 3] - (i % 5)) * (1 + i / 10)
    profiles = neuron_profiles(acts, factors)
    neighbours, cosines = decoder_neighbours(rng.normal(size=(n_neurons, 8)))
    dead = ~(acts > 0).any(axis=0)
    nmi = np.zeros((n_neurons, len(FACTORS)), np.float32)
    nmi[:10, 1], nmi[10:20, 3] = 0.4, 0.3
    arrays = {k: profiles[k] for k in ("frequency", "max_activation", "mean_activation", "top_examples", "top_values")}
    for name, tuning, values in zip(FACTORS, profiles["tuning"], profiles["tuning_values"]):
        arrays[f"tuning/{name}"], arrays[f"tuning_values/{name}"] = tuning, values
    # Neuron 0 the best detector of scale's value 2; no other the best of any value.
    auroc, auroc_factor, auroc_value = np.full(n_neurons, np.nan, np.float32), np.full(n_neurons, -1), np.full(n_neurons, -1)
    auroc[0], auroc_factor[0], auroc_value[0] = 0.9, 1, 2
    arrays.update(auroc=auroc, auroc_factor=auroc_factor, auroc_value=auroc_value)
    arrays.update(factors=np.asarray(FACTORS), eval_indices=eval_indices, nmi=nmi,
                  best_factor=nmi.argmax(axis=1), dead=dead, neighbours=neighbours, neighbour_cosines=cosines)
    write_neurons(run_dir, arrays)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["data_source"] = {"dataset": "dsprites", "source": "procedural"}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return arrays
