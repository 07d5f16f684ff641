"""How fast a runs dir lists: ``store.list_runs``, and the runs table's rows, for 1,000 and 10,000 runs.

Writes a few dozen template runs with the tool's own writers (``RunWriter`` fed a run's start, data
source and end: config.yaml, listing.json, summary.json and events.jsonl as a finished run has them;
methods, sparsities and statuses varied), copies them into N run directories of a temporary runs dir with
a sweep recording some of them, and times (median of ``--repeats``, warm file cache):

- ``list_runs``: every run read and checked, as the TUI's runs screen lists them;
- ``+ table``: that plus the sweep index and each row's values (what the screen shows);

for runs all written by this version, and for a share ``--old`` written the way earlier versions wrote
them (no listing.json: config.yaml parsed by the bounded YAML composer). ``--baseline`` times the slow
path alone (``list_runs(fast=False)``) on that many runs, per run.

    python benchmarks/list_runs.py [--sizes 1000 10000] [--old 0.05] [--repeats 3] [--baseline 200]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from collapse_tui import config as config_mod  # noqa: E402
from collapse_tui import events as ev  # noqa: E402
from collapse_tui.store import RunWriter, SweepWriter, layout, list_runs  # noqa: E402
from collapse_tui.tui.runs_table import row_values, sweep_index  # noqa: E402

T0 = 1_790_000_000.0
THRESHOLDS = [0.0, 1e-6, 1e-3, 1e-2]


def template(root: Path, i: int) -> Path:
    """One finished (or stopped, failed, running) run written by RunWriter, its settings varied by ``i``."""
    method = ("topk", "batchtopk", "l1", "jumprelu")[i % 4]
    k_method = method in config_mod.K_METHODS
    sparsity = (8, 16, 32, 50, 64)[i % 5] if k_method else (0.01, 0.03, 0.1, 0.3, 1.0)[i % 5]
    status = ("ok",) * 6 + ("stopped", "failed")
    status = status[i % len(status)]
    sae = {"n_neurons": 512, "method": method, "epochs": 20, ("k" if k_method else "l1_coefficient"): sparsity}
    cfg = config_mod.validate({"name": f"bench-{method}-{sparsity}", "seed": i % 3, "runs_dir": str(root),
                               "sae": sae, "eval": {"thresholds": THRESHOLDS}}).to_dict()
    run_dir = root / f"template-{i:03d}"
    run_dir.mkdir(parents=True)
    writer = RunWriter(run_dir)
    writer(ev.RunStarted(run_id=run_dir.name, name=cfg["name"], run_dir=str(run_dir), config=cfg, time=T0,
                         environment={"collapse_tui": "0.1.0", "backend": "tensorflow", "keras": "3.15.1"}))
    writer(ev.DataSource(provenance={"dataset": "dsprites", "source": "file", "sha256": "ab" * 32}, time=T0))
    final = {**{f"dead@{t:g}": 0.3 + 0.01 * j for j, t in enumerate(THRESHOLDS)}, "dead_fraction": 0.31,
             "n_neurons": 512, "l0": float(sparsity), "mse": 0.0012, "explained_variance": 0.93, "mig": 0.04,
             "specialized": 77, "sparsity": float(sparsity), "mig_vae": 0.08, "updates": 9000, "epoch": 20}
    summary = {"status": status, "run_id": run_dir.name, "name": cfg["name"], "dataset": "dsprites",
               "method": method, "sparsity": float(sparsity), "n_neurons": 512, "source": "encoder_hidden",
               "remedies": [], "resampled": 0, "started": T0, "finished": T0 + 300, "seconds": 300.0,
               "durations": {"data": 3.0, "vae": 120.0, "sae": 170.0, "evaluation": 7.0}, "sae_epochs": 20,
               "updates_by_sparsity": {str(sparsity): 9000}, "evaluated_at_epoch": 20, "final": final,
               "vae": {"mig": 0.08, "bce": 2800.5, "active_latents": 6}, "vae_model": "vae-0123abcd.keras",
               "data": {"dataset": "dsprites", "n_train": 20000}}
    if status == "failed":
        writer(ev.RunFailed(reason="RuntimeError: loss is NaN", summary=summary, time=T0 + 300))
    else:
        writer(ev.RunFinished(status=status, summary=summary, time=T0 + 300))
    writer.close()
    return run_dir


def build(runs_dir: Path, templates: list[Path], n: int, old: float) -> None:
    """``n`` run directories copied from ``templates``; every ``1/old``-th without its listing sidecar (as
    an earlier version wrote it); a sweep recording the first hundred."""
    runs_dir.mkdir(parents=True)
    every = round(1 / old) if old > 0 else 0
    made = []
    for i in range(n):
        source = templates[i % len(templates)]
        target = runs_dir / layout.stamped_name(f"bench-{i}", T0 + 60 * i)
        target.mkdir()
        for name in (layout.CONFIG_FILE, layout.LISTING_FILE, layout.SUMMARY_FILE, layout.EVENTS_FILE):
            if name == layout.LISTING_FILE and every and i % every == 0:
                continue
            shutil.copyfile(source / name, target / name)
        made.append(target)
    sweep = SweepWriter(runs_dir, "bench", n_runs=min(n, 100))
    for run in made[:100]:
        sweep.add(run)


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def table(runs_dir: Path) -> None:
    records = list_runs(runs_dir, include_unreadable=True)
    sweeps = sweep_index(runs_dir)
    for r in records:
        row_values(r, sweeps.get(r.run_id, (None, None))[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000], help="runs to list")
    parser.add_argument("--old", type=float, default=0.05,
                        help="share of runs written without listing.json, also timed (0: not timed)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", type=int, default=200, help="runs to time the slow path on (0: none)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="collapse-tui-bench-"))
    try:
        start = time.perf_counter()
        templates = [template(tmp / "templates", i) for i in range(40)]
        print(f"40 template runs written by RunWriter in {time.perf_counter() - start:.1f} s "
              f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
        for n in args.sizes:
            for old in sorted({0.0, args.old}):
                runs_dir = tmp / f"runs-{n}-{old:g}"
                build(runs_dir, templates, n, old)
                listed = len(list_runs(runs_dir))
                assert listed == n, f"{listed} of {n} runs listed"
                t_list = timed(lambda: list_runs(runs_dir, include_unreadable=True), args.repeats)
                t_table = timed(lambda: table(runs_dir), args.repeats)
                print(f"{n:>7,} runs, {old:>4.0%} without listing.json: list_runs {t_list:6.2f} s "
                      f"({t_list / n * 1e6:4.0f} us a run), + table {t_table:6.2f} s  (median of {args.repeats})")
                shutil.rmtree(runs_dir)
        if args.baseline:
            runs_dir = tmp / "runs-baseline"
            build(runs_dir, templates, args.baseline, 0.0)
            t_slow = timed(lambda: list_runs(runs_dir, fast=False), 1)
            t_fast = timed(lambda: list_runs(runs_dir), args.repeats)
            print(f"slow path (config.yaml parsed), {args.baseline} runs: {t_slow:.2f} s "
                  f"({t_slow / args.baseline * 1e3:.1f} ms a run; fast path {t_fast / args.baseline * 1e3:.2f} ms)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
