"""Re-render the documentation's pictures of the terminal UI (docs/tui.md, and the README's live
screen) from a real run of the quick preset.

Runs ``configs/quick.yaml`` in the UI (headless, 100 x 30), saves the live screen once the first run's
SAE has trained half its epochs (``docs/tui_live.svg``), lets the preset finish, then compares three of
its Top-k runs on the curves tab (``docs/tui_compare.svg``), and opens the neuron inspector on the last
of them (``docs/tui_neurons.svg``). A few minutes on 2 CPU cores.

    KERAS_BACKEND=tensorflow python docs/screenshots.py [--runs-dir /tmp/shots/runs]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from collapse_tui import config  # noqa: E402
from collapse_tui.store import load_run  # noqa: E402
from collapse_tui.tui.app import CollapseApp  # noqa: E402
from collapse_tui.tui.screens.compare import CompareScreen  # noqa: E402
from collapse_tui.tui.screens.neurons import NeuronScreen  # noqa: E402

SIZE = (100, 30)


async def wait(pilot, condition, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise TimeoutError("the run did not get there in time")
        await pilot.pause(0.5)


async def shoot(runs_dir: Path, out: Path) -> None:
    runs = config.expand(dict(config.load_yaml(ROOT / "configs" / "quick.yaml"), runs_dir=str(runs_dir)))
    app = CollapseApp(runs_dir=str(runs_dir), presets_dir=ROOT / "configs")
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        feed = app.start_training(runs)
        await wait(pilot, lambda: feed.states and feed.states[0].phase == "sae" and feed.states[0].epoch >= 5, 1800)
        app.screen.selected = 0
        await pilot.pause(1.5)  # a panel redraw
        app.save_screenshot(filename="tui_live.svg", path=str(out))
        await wait(pilot, lambda: not feed.running, 3600)
        records = [load_run(s.run_dir) for s in feed.states if s.config.get("sae", {}).get("method") == "topk"][:3]
        app.push_screen(CompareScreen(records, export_dir=runs_dir))
        await pilot.pause()
        app.screen.action_tab("curves")
        await pilot.pause(1.0)
        app.save_screenshot(filename="tui_compare.svg", path=str(out))
        # The neuron inspector on the last of the compared runs, once its images are drawn.
        app.push_screen(NeuronScreen(records[-1].path))
        await pilot.pause()
        await wait(pilot, lambda: "▀" in str(app.screen.query_one("#neuron-images").content), 120)
        app.save_screenshot(filename="tui_neurons.svg", path=str(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs-dir", default="/tmp/collapse-tui-screenshots/runs")
    parser.add_argument("--out", default=str(ROOT / "docs"))
    args = parser.parse_args()
    asyncio.run(shoot(Path(args.runs_dir), Path(args.out)))
    print(f"wrote {args.out}/tui_live.svg, tui_compare.svg and tui_neurons.svg")


if __name__ == "__main__":
    main()
