"""Training SAEs on a large activations file: its training rows held in memory against read from the file a
batch at a time as training uses them (``data.streaming``), same run otherwise.

Writes a 1,000,000 × 256 float32 ``.npy`` (1 GiB; low-rank rows plus noise) to a temporary directory, then
trains the same Top-k SAE on it (995,000 training rows, 5,000 held out) with ``data.streaming: never`` and
``always``, each run in a process of its own, the two alternated ``--repeats`` times so machine noise hits
both alike. Prints, per variant, the median SAE-phase time (training, one pass over the rows for the
normalisation, the final evaluation), its updates per second, the whole run's time, and the process's peak
resident memory (``VmHWM``), also above a baseline run (10,000 training rows held: what the framework,
the model and the evaluation take); then the ratio of the streamed speed to the held one (goal ≥ 0.8)
and each variant's memory above the baseline against the file's size.

The file is read through the operating system's page cache: right after it is written it is in memory, so
this measures what streaming costs the training loop, not the disk (a file larger than memory is read at
the disk's speed, for which no in-memory run exists to compare against).

    KERAS_BACKEND=tensorflow python benchmarks/streamed_activations.py [--rows 1000000] [--dim 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
from collapse_tui.config import validate
from collapse_tui.engine.runner import Engine
cfg = validate(json.loads(sys.argv[1]))
t0 = time.perf_counter()
result = Engine().run(cfg)
wall = time.perf_counter() - t0
try:  # this process's own peak (ru_maxrss also counts the parent's peak, kept across fork and exec)
    peak = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:"))
except (OSError, StopIteration):
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"status": result.status, "reason": result.summary.get("reason"), "wall": wall,
                  "sae": result.summary.get("durations", {}).get("sae"),
                  "updates": result.summary.get("final", {}).get("updates"), "peak_rss": peak}))
"""


def write_file(path: Path, rows: int, dim: int, seed: int = 0) -> None:
    """``rows`` × ``dim`` float32 activations, written a block at a time (never whole in memory)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    basis = rng.normal(size=(32, dim)).astype(np.float32)
    with open(path, "wb") as fh:  # written, not mapped: this process stays small, and so do the runs it starts
        np.lib.format.write_array_header_1_0(fh, {"descr": "<f4", "fortran_order": False, "shape": (rows, dim)})
        for lo in range(0, rows, 65536):
            hi = min(lo + 65536, rows)
            block = np.maximum(rng.normal(size=(hi - lo, 32)).astype(np.float32), 0) @ basis
            fh.write((block + 0.1 * rng.normal(size=(hi - lo, dim)).astype(np.float32)).tobytes())


def run_config(path: Path, runs_dir: Path, n_train: int, streaming: str, epochs: int) -> dict:
    return {"name": f"bench-{streaming}", "seed": 0, "runs_dir": str(runs_dir), "models_dir": str(runs_dir),
            "data": {"dataset": "activations", "path": str(path), "n_train": n_train, "streaming": streaming},
            "sae": {"n_neurons": 512, "method": "topk", "k": 32, "epochs": epochs, "batch_size": 256,
                    "schedule": {"kind": "constant"}},
            "eval": {"n_samples": 5000, "every": 0, "density_thresholds": [], "explained_variance_floor": None}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the file (default 1,000,000)")
    parser.add_argument("--dim", type=int, default=256, help="features per row (default 256)")
    parser.add_argument("--epochs", type=int, default=1, help="SAE epochs per run (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each variant, alternated (default 3)")
    args = parser.parse_args(argv)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    with tempfile.TemporaryDirectory(prefix="streamed-bench-") as tmp:
        path = Path(tmp) / "acts.npy"
        write_file(path, args.rows, args.dim)
        size = path.stat().st_size
        print(f"{path.name}: {args.rows:,} × {args.dim} float32, {size / 2**30:.2f} GiB; "
              f"backend {os.environ.get('KERAS_BACKEND', 'tensorflow')}; {args.repeats} runs of each, alternated")
        # "baseline": the same run on 10,000 training rows held in memory, for the memory the framework, the
        # model and the evaluation take whatever the data.
        variants = {"never": args.rows - 5000, "always": args.rows - 5000, "baseline": 10_000}
        results: dict[str, list[dict]] = {name: [] for name in variants}
        for repeat in range(args.repeats):
            for streaming, n_train in variants.items():
                cfg = run_config(path, Path(tmp) / "runs", n_train, "never" if streaming == "baseline" else streaming,
                                 args.epochs)
                done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg)], env=env, capture_output=True,
                                      text=True)
                lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
                if done.returncode != 0 or not lines:
                    print(f"run failed ({streaming}): {done.stderr[-1500:]}", file=sys.stderr)
                    return 1
                record = json.loads(lines[-1])
                if record["status"] != "ok":
                    print(f"run {record['status']} ({streaming}): {record['reason']}", file=sys.stderr)
                    return 1
                results[streaming].append(record)
                print(f"  run {repeat + 1} {streaming:6s}: sae {record['sae']:6.1f} s, whole run {record['wall']:6.1f} s,"
                      f" peak memory {record['peak_rss'] / 2**30:.2f} GiB", flush=True)
        medians = {}
        base = statistics.median(r["peak_rss"] for r in results["baseline"])
        print(f"baseline (10,000 rows held): peak memory {base / 2**30:.2f} GiB")
        for streaming, label in (("never", "held in memory"), ("always", "streamed")):
            rs = results[streaming]
            sae = statistics.median(r["sae"] for r in rs)
            medians[streaming] = sae
            updates = rs[0]["updates"]
            peak = statistics.median(r["peak_rss"] for r in rs)
            print(f"{label:15s} sae phase {sae:6.1f} s ({updates / sae:4.0f} updates/s), whole run "
                  f"{statistics.median(r['wall'] for r in rs):6.1f} s, peak memory {peak / 2**30:.2f} GiB, "
                  f"{(peak - base) / 2**30:+.2f} GiB over the baseline ({(peak - base) / size:.2f} × the file)")
        print(f"streamed speed / held speed: {medians['never'] / medians['always']:.2f} (goal ≥ 0.8)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
