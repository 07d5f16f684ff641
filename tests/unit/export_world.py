"""What the export tests share: a sweep of three small hand-made runs (no training) that vary their
method, k or λ, seed and AuxK remedy, as a sweep directory records them."""

from __future__ import annotations

from pathlib import Path

from collapse_tui.store import RunWriter, SweepWriter
from tests.tui.support import run_events

# (name, method, k or λ, seed, AuxK): what the runs of the sweep vary.
RUNS = (("topk-k8-s0", "topk", 8, 0, False), ("topk-k2-s1", "topk", 2, 1, True), ("l1-s2", "l1", 0.3, 2, False))


def run_name(i: int) -> str:
    """The directory name of the ``i``-th run of :data:`RUNS`."""
    return f"20260101-12000{i}-{RUNS[i][0]}"


def _write_run(runs_dir: Path, i: int) -> Path:
    name, method, sparsity, seed, auxk = RUNS[i]
    run_dir = runs_dir / run_name(i)
    run_dir.mkdir(parents=True)
    events = run_events(runs_dir.parent, run_dir, name, method=method, sparsity=sparsity, epochs=3, n_neurons=12,
                        dead_final=0.1 + seed / 10)
    config = events[0].config
    config["seed"], config["name"] = seed, name
    config["sae"]["remedies"]["auxk"] = auxk
    writer = RunWriter(run_dir)
    for event in events:
        writer(event)
    writer.close()
    return run_dir


def build_sweep(root: Path) -> Path:
    """``root/runs`` with the runs of :data:`RUNS` and their sweep: the sweep's directory."""
    runs_dir = root / "runs"
    writer = SweepWriter(runs_dir, "mixed", n_runs=len(RUNS))
    for i in range(len(RUNS)):
        writer.add(_write_run(runs_dir, i))
    return writer.path
