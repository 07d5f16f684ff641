"""A sweep of run directories with hand-chosen final metrics (no training), for the sweep, plot and paired
screens: Top-k at k = 8 and 16, plain and with AuxK, three seeds each, and L1 at one λ over two seeds.

At k = 8 the dead fractions by seed are 10, 20, 30 % (plain) and 5, 14, 27 % (AuxK): differences −5, −6,
−3 points, mean −14/3, sd √(7/3), so a 95% t-interval of −14/3 ± 4.3027·√(7/9) = [−8.461, −0.872] and a
paired t-test p of 0.0339 (the worked example of tests/unit/test_paired.py). L0 by seed: 6, 8, 10 (plain)
and 7, 8, 9 (AuxK), means 8 ± 2 and 8 ± 1.
"""

from __future__ import annotations

from pathlib import Path

from collapse_tui import config as config_mod
from collapse_tui import events as ev
from collapse_tui.store import RunWriter, SweepWriter
from tests.tui.support import ENVIRONMENT, T0

THRESHOLDS = [0.0, 1e-6, 1e-3, 1e-2]
# (method, k or λ, remedies): {seed: (dead fraction, L0)}
FINALS = {
    ("topk", 8, ()): {0: (0.10, 6.0), 1: (0.20, 8.0), 2: (0.30, 10.0)},
    ("topk", 8, ("auxk",)): {0: (0.05, 7.0), 1: (0.14, 8.0), 2: (0.27, 9.0)},
    ("topk", 16, ()): {0: (0.05, 14.0), 1: (0.05, 15.0), 2: (0.08, 16.0)},
    ("topk", 16, ("auxk",)): {0: (0.02, 15.0), 1: (0.03, 16.0), 2: (0.04, 16.0)},
    ("l1", 0.1, ()): {0: (0.50, 20.0), 1: (0.70, 30.0)},
}


def final_metrics(dead: float, l0: float, seed: int) -> dict:
    dead_at = {f"dead@{t:g}": round(min(1.0, dead + 0.01 * i), 4) for i, t in enumerate(THRESHOLDS)}
    return {**dead_at, "dead_fraction": dead, "n_neurons": 64, "n_factors": 5, "l0": l0,
            "explained_variance": round(0.9 + 0.01 * seed, 3), "mse": 0.001, "mig": round(0.05 + 0.01 * seed, 3)}


def write_run(runs_dir: Path, name: str, method: str, sparsity: float, remedies: tuple, seed: int,
              dead: float, l0: float) -> Path:
    sae = {"n_neurons": 64, "method": method, "epochs": 2, "remedies": {r: True for r in remedies},
           "k" if method == "topk" else "l1_coefficient": int(sparsity) if method == "topk" else sparsity}
    config = config_mod.validate({"name": name, "seed": seed, "runs_dir": str(runs_dir), "sae": sae,
                                  "eval": {"thresholds": THRESHOLDS, "explained_variance_floor": None}}).to_dict()
    run_dir = runs_dir / f"20260101-1200{seed:02d}-{name}"
    run_dir.mkdir(parents=True)
    writer = RunWriter(run_dir)
    writer(ev.RunStarted(run_id=run_dir.name, name=name, run_dir=str(run_dir), config=config,
                         environment=ENVIRONMENT, time=T0))
    summary = {"status": "ok", "run_id": run_dir.name, "name": name, "dataset": "dsprites", "method": method,
               "sparsity": float(sparsity), "n_neurons": 64, "source": "encoder_hidden", "remedies": list(remedies),
               "started": T0, "finished": T0 + 20, "seconds": 20.0, "final": final_metrics(dead, l0, seed)}
    writer(ev.RunFinished(status="ok", summary=summary, time=T0 + 20))
    writer.close()
    return run_dir


def make_sweep(tmp_path: Path, finals: dict = FINALS, name: str = "remedies") -> tuple[Path, list[Path]]:
    """The sweep directory and its run directories, under ``tmp_path/runs``."""
    runs_dir = tmp_path / "runs"
    runs = []
    for (method, sparsity, remedies), by_seed in finals.items():
        for seed, (dead, l0) in by_seed.items():
            label = f"{name}-{method}-{'k' if method == 'topk' else 'lam'}{sparsity:g}" + "".join(f"-{r}" for r in remedies)
            runs.append(write_run(runs_dir, f"{label}-s{seed}", method, sparsity, remedies, seed, dead, l0))
    writer = SweepWriter(runs_dir, name, n_runs=len(runs))
    for run in runs:
        writer.add(run)
    return writer.path, runs
