"""How the TUI's runs screen copes with a large runs dir: N synthetic runs (default 10,000), one process.

Writes template runs with the tool's own writers and copies them into N run directories (as
``benchmarks/list_runs.py`` does: methods, sparsities, seeds and statuses varied, a sweep recording the
first hundred), then drives the app headless with ``App.run_test()`` and prints medians over ``--repeats``:

- open: from the runs screen's mount to the table's first paint, less the listing (``list_runs``, the
  disk), which is printed beside it;
- filter: for each of a few filters, the time from applying each prefix typed so far (what one key press
  costs once the filter's debounce fires) to the table's next paint; and the key press itself (its
  handler, the debounce timer restarted) for a listing as long as that;
- group: choosing a setting to group by, to the next paint.

    python benchmarks/runs_screen.py [--runs 10000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from textual.widgets import DataTable, Input  # noqa: E402

from list_runs import build, template  # noqa: E402  (the same synthetic runs the listing benchmark times)
from collapse_tui.tui.app import CollapseApp  # noqa: E402
from collapse_tui.tui.screens import runs as runs_module  # noqa: E402

FILTERS = ["dead>30", "sae.k=50", "topk", "method=l1 seed=0"]


class Clock:
    """When the runs screen mounted, when its listing ended, and when the runs table last painted a line."""

    def __init__(self) -> None:
        self.mounted = self.listed = self.listing = 0.0
        self.painted: list[tuple[float, int]] = []  # (when, rows in the table)

    def install(self) -> None:
        clock = self
        list_runs, on_mount, render_line = runs_module.list_runs, runs_module.RunsScreen.on_mount, DataTable.render_line

        def timed_list_runs(*args, **kwargs):
            start = time.perf_counter()
            try:
                return list_runs(*args, **kwargs)
            finally:
                clock.listed = time.perf_counter()
                clock.listing = clock.listed - start

        def timed_on_mount(self):
            clock.mounted = time.perf_counter()
            return on_mount(self)

        def timed_render_line(self, y):
            if self.id == "runs":
                clock.painted.append((time.perf_counter(), self.row_count))
            return render_line(self, y)

        runs_module.list_runs = timed_list_runs
        runs_module.RunsScreen.on_mount = timed_on_mount
        DataTable.render_line = timed_render_line

    def paint_after(self, t0: float, rows: bool = False) -> float | None:
        """Seconds from ``t0`` to the table's first paint after it (of some rows, with ``rows``)."""
        return next((t - t0 for t, n in self.painted if t >= t0 and (n or not rows)), None)


async def settle(pilot, clock: Clock, t0: float, rows: bool = False) -> float:
    """Wait until the table has painted after ``t0``; the seconds that took."""
    for _ in range(1000):
        await pilot.pause()
        seconds = clock.paint_after(t0, rows)
        if seconds is not None:
            return seconds
        await pilot.pause(0.005)
    raise RuntimeError("the runs table never painted")


async def measure(runs_dir: Path, presets: Path, repeats: int) -> None:
    clock = Clock()
    clock.install()
    app = CollapseApp(runs_dir=str(runs_dir), presets_dir=presets, environment_label="benchmark")
    opened, listed, filtered, presses, grouped = [], [], {f: [] for f in FILTERS}, [], []
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        for _ in range(repeats):
            clock.painted.clear()
            app.push_screen(runs_module.RunsScreen(runs_dir))
            await settle(pilot, clock, time.perf_counter(), rows=True)
            opened.append(clock.paint_after(clock.listed, rows=True))
            listed.append(clock.listing)
            screen = app.screen
            assert screen.query_one("#runs", DataTable).row_count == len(screen.records)
            for text in FILTERS:
                for end in range(1, len(text) + 1):
                    screen.filter_text = text[:end]
                    before = screen.shown
                    t0 = time.perf_counter()
                    screen.apply_filter()
                    if screen.shown is before:  # the same rows: the table is left as it is
                        filtered[text].append(time.perf_counter() - t0)
                    else:
                        filtered[text].append(await settle(pilot, clock, t0))
                screen.filter_text = ""
                screen.apply_filter()
                await pilot.pause()
            field = screen.query_one("#filter", Input)
            field.focus()
            await pilot.pause()
            for key in "dead>3":
                t0 = time.perf_counter()
                await pilot.press(key)
                presses.append(time.perf_counter() - t0)
            await pilot.pause(screen.DEBOUNCE_S * 2)
            field.value = ""
            await pilot.pause(screen.DEBOUNCE_S * 2)
            t0 = time.perf_counter()
            screen.group_by("sae.k")
            grouped.append(await settle(pilot, clock, t0))
            screen.group_by("none")
            await pilot.pause()
            app.pop_screen()
            await pilot.pause()
    n = len(screen.records)
    print(f"{n:,} runs, median of {repeats} (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print(f"open: mount to first table paint after the listing {statistics.median(opened):.2f} s "
          f"(the listing itself {statistics.median(listed):.2f} s)")
    for text, times in filtered.items():
        print(f"filter {text!r:22} per key press (prefix applied to paint): median {statistics.median(times) * 1e3:6.0f} ms,"
              f" max {max(times) * 1e3:6.0f} ms")
    print(f"key press into the filter (handler, debounce restarted): median {statistics.median(presses) * 1e3:.0f} ms")
    print(f"group by sae.k to paint: median {statistics.median(grouped) * 1e3:.0f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000, help="run directories to write")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="collapse-tui-bench-"))
    try:
        templates = [template(tmp / "templates", i) for i in range(40)]
        runs_dir = tmp / "runs"
        build(runs_dir, templates, args.runs, 0.0)
        presets = tmp / "presets"
        presets.mkdir()
        asyncio.run(measure(runs_dir, presets, args.repeats))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
