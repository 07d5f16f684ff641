"""Does the TUI slow training down, and does it stay responsive while a run trains?

One run of a config (default: quick-topk-k50 of configs/quick.yaml, the embedded default) is trained
by ``--batch`` (``batch.main`` on a YAML file, console lines discarded) and through the TUI (headless
``run_test``, the live run screen redrawing its charts), alternating, several times; the VAE is trained
once beforehand and loaded by every run, so the timed part is the SAE phase (training and its
evaluations). Then, while a longer run trains in the TUI, a key is pressed every 50 ms and the time
from ``pilot.press`` to its handler is recorded.

    KERAS_BACKEND=tensorflow python benchmarks/tui_throughput.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from textual.binding import Binding  # noqa: E402

import yaml  # noqa: E402

from collapse_tui import batch, config as config_mod  # noqa: E402
from collapse_tui.engine.environment import quiet_native_logs  # noqa: E402
from collapse_tui.engine.runner import Engine  # noqa: E402
from collapse_tui.store import list_runs  # noqa: E402
from collapse_tui.tui.app import CollapseApp  # noqa: E402


def quick_run(root: Path, config: str, run: str, name: str, **sae):
    """Run ``run`` of ``config``'s sweep, writing under ``root``, renamed ``name``; ``sae`` overrides."""
    found = {c.name: c for c, _ in config_mod.load(config)}
    if run not in found:
        raise SystemExit(f"{config} has no run {run!r}; it has: {', '.join(found)}")
    cfg = found[run]
    return cfg.model_copy(update={
        "name": name, "runs_dir": str(root / "runs"), "models_dir": str(root / "models"),
        "sae": cfg.sae.model_copy(update=sae)})


class TimedApp(CollapseApp):
    """The app plus one key whose handler notes when it ran (to time key handling)."""

    BINDINGS = [*CollapseApp.BINDINGS, Binding("x", "ping", "ping", show=False)]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pinged: list[float] = []

    def action_ping(self) -> None:
        self.pinged.append(time.perf_counter())


async def wait_done(app, pilot, timeout=600.0):
    """Sleep on the event loop until the run ends (``pilot.pause`` would add its own work each call)."""
    deadline = time.monotonic() + timeout
    while app.training is None or app.training.running:
        if time.monotonic() > deadline:
            raise TimeoutError("the run did not finish")
        await asyncio.sleep(0.25)
    await pilot.pause()


def batch_run(config, root: Path) -> dict:
    path = root / f"{config.name}.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False))
    with contextlib.redirect_stdout(io.StringIO()):
        if batch.main(str(path)) != 0:
            raise RuntimeError(f"--batch {path} failed")
    return next(r for r in list_runs(config.runs_dir) if r.summary.get("name") == config.name).summary


def tui_run(config) -> dict:
    async def scenario():
        app = TimedApp(presets_dir=tempfile.mkdtemp(), environment_label="benchmark")
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            feed = app.start_training([(config, {})])
            await wait_done(app, pilot)
            return feed.current.summary | {"redraws": app.screen.redraws, "redraw_s": app.screen.redraw_seconds}

    return asyncio.run(scenario())


def key_latency(config, presses: int) -> tuple[list[float], int]:
    async def scenario():
        app = TimedApp(presets_dir=tempfile.mkdtemp(), environment_label="benchmark")
        latencies = []
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            feed = app.start_training([(config, {})])
            while not feed.current.sae_loss and feed.running:  # time keys while the SAE trains
                await pilot.pause(0.05)
            while feed.running and len(latencies) < presses:
                before = len(app.pinged)
                start = time.perf_counter()
                await pilot.press("x")
                if len(app.pinged) > before:
                    latencies.append(app.pinged[-1] - start)
                await pilot.pause(0.05)
            app.training.stop()
            await wait_done(app, pilot)
            return latencies, app.screen.redraws

    return asyncio.run(scenario())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "configs" / "quick.yaml"))
    parser.add_argument("--run", default="quick-topk-k50", help="which run of the config's sweep to time")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--presses", type=int, default=100)
    args = parser.parse_args()

    def make_config(root: Path, name: str, **sae):
        return quick_run(root, args.config, args.run, name, **sae)

    with quiet_native_logs():
        import keras
    root = Path(tempfile.mkdtemp(prefix="tui-bench-"))
    print(f"backend {keras.backend.backend()}, keras {keras.__version__}; {args.run} of {args.config}; "
          f"runs in {root}")
    Engine().run(make_config(root, "warmup"))  # trains and caches the VAE; compiles the SAE path once
    batch_s, tui_s = [], []
    for i in range(args.repeats):
        summary = batch_run(make_config(root, f"batch{i}"), root)
        batch_s.append(summary["durations"]["sae"])
        summary = tui_run(make_config(root, f"tui{i}"))
        tui_s.append(summary["durations"]["sae"])
        print(f"  repeat {i + 1}: SAE phase --batch {batch_s[-1]:.2f}s   TUI {tui_s[-1]:.2f}s "
              f"({summary['redraws']} redraws, {summary['redraw_s'] * 1000:.0f} ms in them)")
    b, t = statistics.median(batch_s), statistics.median(tui_s)
    print(f"SAE phase, median of {args.repeats}: --batch {b:.2f}s, in the TUI {t:.2f}s, "
          f"throughput ratio TUI/--batch {b / t:.3f}")
    latencies, redraws = key_latency(make_config(root, "keys", epochs=100), args.presses)
    if latencies:
        ms = sorted(1000 * x for x in latencies)
        p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
        print(f"key press -> handler while training: median {statistics.median(ms):.1f} ms, "
              f"p95 {p95:.1f} ms, max {ms[-1]:.1f} ms ({len(ms)} presses; {redraws} chart redraws)")


if __name__ == "__main__":
    main()
