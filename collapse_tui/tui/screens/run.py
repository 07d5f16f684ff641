"""The run view: phase, progress and three panels (loss, dead neurons, MIG).

One screen for a live run and for a followed run directory: it is given an :class:`EventFeed` and
polls it on a timer. Events are folded into state as they arrive; the progress line is refreshed
``REDRAW_HZ`` times a second and the panels at most ``PANEL_HZ`` times (drawing a screen of charts costs
the training thread CPU time; charts a second late cost the user nothing), never per training step.
"""

from __future__ import annotations

import math
import re
import time

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Label, ProgressBar, Static, TabbedContent, TabPane

from collapse_tui.config import sparsity_label as _sparsity_label
from collapse_tui.metrics.specs import threshold_key
from collapse_tui.tui.state import LOSS_TERMS, EventFeed, RunState, dead_neurons, format_seconds
from collapse_tui.tui.widgets.chart_view import CHART_BINDINGS, ChartView
from collapse_tui.tui.widgets.charts import PALETTE, Heatmap, Histogram, LineChart, Series

REDRAW_HZ = 4
PANEL_HZ = 1


def _xy(points: list[tuple[int, float]]) -> tuple[list[float], list[float]]:
    return [p[0] for p in points], [p[1] for p in points]


def loss_series(terms: dict[str, list[tuple[int, float]]]) -> list[Series]:
    """The loss and each term it sums, in a fixed colour per term. A term that is zero throughout (the
    sparsity term of Top-k) is left out rather than drawn as a line along the axis; one equal to the loss
    throughout (Top-k's reconstruction: its loss has no other term) is drawn once, as the loss, its legend
    entry saying so, rather than hidden under it with a legend entry of its own."""
    series = []
    loss = terms.get("loss") or []
    for i, (name, label) in enumerate(LOSS_TERMS.items()):
        points = terms.get(name)
        if not points or (name != "loss" and not any(v != 0 for _, v in points)):
            continue
        if name != "loss" and len(points) == len(loss) and all(
                e == f and math.isclose(v, w, rel_tol=1e-9, abs_tol=1e-12) for (e, v), (f, w) in zip(points, loss)):
            series[0] = Series(f"{series[0].label} = {label}", series[0].xs, series[0].ys, series[0].color)
            continue
        series.append(Series(label, *_xy(points), PALETTE[i]))
    return series


def phase_text(state: RunState) -> str:
    """The head's phase, most telling first (a narrow terminal cuts the end): ``sae epoch 3/10 · topk,
    500 neurons``; "training the SAE (…)" after "sae" says nothing but the parenthesis."""
    if not state.phase:
        return ""
    epoch = f" epoch {state.epoch}/{state.epochs}" if state.epochs else ""
    detail = re.sub(r"^training the \w+ \((.*)\)$", r"\1", state.phase_detail or "")
    return f"{state.phase}{epoch}" + (f" · {detail}" if detail else "")


def sparsity_label(state: RunState) -> str:
    if state.sparsity is None:
        return "–"
    return _sparsity_label(state.method, state.sparsity, spaced=True)


class RunScreen(Screen):
    """Shows one run (or the current run of a sweep) as its events arrive."""

    BINDINGS = [
        Binding("s", "stop", "Stop run"),
        Binding("t", "next_threshold", "Threshold"),
        Binding("n", "neurons", "Neurons"),
        Binding("[", "previous_run", "Prev run", show=False),
        Binding("]", "next_run", "Next run", show=False),
        Binding("1", "tab('loss')", "Loss", show=False),
        Binding("2", "tab('dead')", "Dead", show=False),
        Binding("3", "tab('mig')", "MIG", show=False),
        Binding("escape", "back", "Back"),
        *CHART_BINDINGS,
    ]

    threshold_index: reactive[int] = reactive(0)

    class EventsArrived(Message):
        """Posted (from the training thread) when the feed's queue stops being empty."""

    def __init__(self, feed: EventFeed, **kwargs) -> None:
        super().__init__(**kwargs)
        self.feed = feed
        self._drawn_version: tuple = ()
        self._drawn_head: tuple = ()
        self.redraws = 0
        self._panels_drawn_at = -1e9
        self.redraw_seconds = 0.0  # time spent updating widgets (what the UI costs the training thread)
        # Which of the feed's runs the panels show: None follows the latest (the runs of a bank train at
        # once, and [ / ] move between them).
        self.selected: int | None = None
        self.chart_view = ChartView()  # shared by the charts: they smooth, scale and zoom together
        if feed.live:
            feed.notify = lambda: self.post_message(self.EventsArrived())

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="run-head"):
            yield Static("", id="run-title")
            yield Button("Stop ■", id="stop", variant="error", compact=True)
        with Horizontal(id="run-progress"):
            yield ProgressBar(total=None, show_eta=False, show_percentage=True, id="bar")
            yield Label("", id="eta")
        with TabbedContent(id="panels", initial="loss"):
            with TabPane("Loss", id="loss"):
                with Horizontal(classes="charts"):
                    yield LineChart("VAE loss", id="vae-loss")
                    yield LineChart("SAE loss", id="sae-loss")
            with TabPane("Dead neurons", id="dead"):
                with Horizontal(classes="charts"):
                    yield LineChart("dead %", id="dead-chart", y_range=(0.0, 100.0))
                    with Vertical(classes="side"):
                        yield Histogram("log10 activation density", id="density")
                        yield Static("", id="dead-stats")
            with TabPane("MIG", id="mig"):
                with Horizontal(classes="charts"):
                    yield LineChart("MIG", id="mig-chart")
                    with Vertical(classes="side"):
                        yield Heatmap("NMI neuron × factor (· dead)", id="nmi")
                        yield Static("", id="mig-stats")
        yield Static("", id="run-log")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#stop", Button).display = self.feed.live
        self.feed.poll()
        self.redraw()
        self.set_interval(1 / REDRAW_HZ, self._tick)

    # ------------------------------------------------------------------ feeding
    @on(EventsArrived)
    def _events_arrived(self) -> None:
        self.feed.poll()

    def _tick(self) -> None:
        # Live feeds are polled here too: a wake-up posted to a screen that has since closed is lost.
        self.feed.poll()
        self.redraw()

    @property
    def position(self) -> int:
        """Index in the feed's runs of the run shown."""
        last = len(self.feed.states) - 1
        return last if self.selected is None else min(self.selected, last)

    @property
    def run_state(self) -> RunState:
        if self.selected is None or not self.feed.states:
            return self.feed.current
        return self.feed.states[self.position]

    def action_previous_run(self) -> None:
        if self.position > 0:
            self.selected = self.position - 1
            self.redraw(force=True)

    def action_next_run(self) -> None:
        if self.position < len(self.feed.states) - 1:
            self.selected = self.position + 1
            if self.selected == len(self.feed.states) - 1:
                self.selected = None  # the latest again: follow it as new runs start
            self.redraw(force=True)

    def redraw(self, force: bool = False) -> None:
        """Update the widgets from the feed's current state, if anything changed since last time.
        Only the visible panel is drawn; switching panels draws the new one."""
        started = time.perf_counter()
        state = self.run_state
        panel = self.query_one("#panels", TabbedContent).active
        key = (len(self.feed.states), self.position, state.panel_version, self.threshold_index,
               self.feed.running, self.feed.error, panel)
        self._update_head(state)
        due = time.monotonic() - self._panels_drawn_at >= 1 / PANEL_HZ or state.finished
        if key != self._drawn_version and (due or key[3:] != self._drawn_version[3:]) or force:
            self._drawn_version = key
            self._panels_drawn_at = time.monotonic()
            self.redraws += 1
            {"loss": self._update_loss, "dead": self._update_dead, "mig": self._update_mig}.get(
                panel, self._update_loss)(state)
            log = self.query_one("#run-log", Static)
            if self.feed.error:
                log.update(Text(f"✗ {self.feed.error}", style="red"), layout=False)
            elif state.status == "failed":
                log.update(Text(f"✗ failed: {state.reason}", style="red"), layout=False)
            else:
                log.update(Text(state.messages[-1] if state.messages else ""), layout=False)
        self.redraw_seconds += time.perf_counter() - started

    @on(TabbedContent.TabActivated)
    def _tab_changed(self) -> None:
        self.redraw()

    def _update_head(self, state: RunState) -> None:
        n_runs = self.feed.planned
        which = f"run {self.position + 1}/{n_runs}  " if n_runs > 1 else ""
        status = state.status
        if self.feed.live and self.feed.running and self.feed.stop_event.is_set() and not state.finished:
            status = "stopping"
        phase = phase_text(state)
        colour = {"ok": "green", "failed": "red", "crashed": "red", "stopped": "yellow",
                  "stopping": "yellow"}.get(status, "cyan")
        title = Text.assemble(which, (state.name or "…", "bold"), "  ", (f"[{status}]", colour), f"  {phase}",
                              no_wrap=True, overflow="ellipsis")  # a narrow terminal shows where it is cut
        if state.finished:
            total, done = 1, 1
        else:
            total, done = (state.total or None), state.done
        eta = state.eta()
        if eta is not None and not state.finished and state.last_time is not None and self.feed.live:
            # Between progress reports the estimate keeps counting down with the clock.
            eta = max(0.0, eta - max(0.0, time.time() - state.last_time))
        parts = [f"ETA {format_seconds(eta)}"] if eta is not None else []
        # The phase's ETA starts again with each phase; the run's and the sweep's count down across them.
        run_eta = self.feed.run_eta(state, now=time.time() if self.feed.live else None)
        if run_eta is not None and (run_eta[1] or eta is None or abs(run_eta[0] - eta) >= 1.0):
            parts.append(f"run {'≥' if run_eta[1] else '~'}{format_seconds(run_eta[0])}")
        sweep_eta = self.feed.sweep_eta() if self.feed.running else None
        if sweep_eta is not None:
            parts.append(f"sweep ~{format_seconds(sweep_eta)}")
        eta_text = " · ".join(parts)
        can_stop = self.feed.live and self.feed.running
        head = (title, total, done, eta_text, can_stop)
        if head == self._drawn_head:
            return  # unchanged: no widget update, no repaint
        self._drawn_head = head
        self.query_one("#run-title", Static).update(title, layout=False)
        self.query_one("#bar", ProgressBar).update(total=total, progress=done)
        # Its width follows its text (a sweep's ETA is longer): a layout only when the length changes.
        label = self.query_one("#eta", Label)
        label.update(eta_text, layout=len(eta_text) != len(str(label.content)))
        self.query_one("#stop", Button).disabled = not can_stop

    def _update_loss(self, state: RunState) -> None:
        # A VAE trained earlier with the same config is loaded, not trained: it has no curve here.
        past_vae = state.phase in ("codes", "sae", "evaluate") or state.finished
        self.query_one("#vae-loss", LineChart).set_series(
            loss_series(state.loss_curves("vae")),
            empty="VAE loaded, not trained in this run" if past_vae else "no data yet")
        self.query_one("#sae-loss", LineChart).set_series(loss_series(state.loss_curves("sae")))

    @property
    def threshold(self) -> float | None:
        thresholds = self.run_state.thresholds
        return thresholds[self.threshold_index % len(thresholds)] if thresholds else None

    def _update_dead(self, state: RunState) -> None:
        threshold = self.threshold
        chart = self.query_one("#dead-chart", LineChart)
        chart.title = f"dead % @ {threshold:g}" if threshold is not None else "dead %"
        series = [Series("evaluation", *_xy(state.dead_pct_series(threshold)), PALETTE[3])
                  if threshold is not None else None,
                  # After every epoch: neurons that fired on none of its training inputs.
                  Series("in training", *_xy(state.dead_in_training), PALETTE[1]) if state.dead_in_training else None]
        chart.set_series([s for s in series if s is not None and s.xs])
        latest = state.latest
        hist = latest.get("density_histogram") or {}
        edges = hist.get("edges") or []
        self.query_one("#density", Histogram).set_histogram(
            hist.get("counts") or [], left=f"{edges[0]:g}" if edges else "", right=f"{edges[-1]:g}" if edges else "",
            subtitle=f"(+{hist.get('dead', 0)} dead)" if hist else "")
        n = latest.get("n_neurons")
        dead = latest.get(threshold_key(threshold)) if threshold is not None else None
        lines = [
            f"dead @ {threshold:g}: {dead * 100:.1f}%" + (f" ({round(dead * n)}/{n})" if n else "")
            if dead is not None and threshold is not None else "dead: –",
            f"L0: {latest['l0']:.2f}" if latest.get("l0") is not None else "L0: –",
            f"sparsity: {sparsity_label(state)} ({state.method or '?'})",
            "t: next threshold" if len(state.thresholds) > 1 else "",
        ]
        self.query_one("#dead-stats", Static).update("\n".join(lines), layout=False)

    def _update_mig(self, state: RunState) -> None:
        sae = state.metric_series("mig")
        vae = state.metric_series("mig_vae")
        if not vae and state.vae_metrics.get("mig") is not None and sae:
            vae = [(e, state.vae_metrics["mig"]) for e, _ in sae]
        series = []
        if vae:
            series.append(Series("VAE latents", *_xy(vae), PALETTE[0]))
        if sae:
            series.append(Series("SAE codes", *_xy(sae), PALETTE[2]))
        if not series and state.vae_metrics.get("mig") is not None:
            series.append(Series("VAE latents", [0], [state.vae_metrics["mig"]], PALETTE[0]))
        self.query_one("#mig-chart", LineChart).set_series(series)
        latest = state.latest
        factors = state.vae_metrics.get("factors") or latest.get("factors") or []
        self.query_one("#nmi", Heatmap).set_matrix(latest.get("nmi") or [], factors,
                                                   latest.get("best_factor") or [], dead_neurons(latest))
        spec = latest.get("specialized")
        n = latest.get("n_neurons")
        mig = latest.get("mig")
        lines = [
            f"specialized neurons: {spec}" + (f" of {n}" if n else "") if spec is not None else "specialized: –",
            f"MIG SAE {mig:.3f}" if mig is not None else "MIG SAE –",
            f"MIG VAE {state.vae_metrics['mig']:.3f}" if state.vae_metrics.get("mig") is not None else "MIG VAE –",
        ]
        self.query_one("#mig-stats", Static).update("\n".join(lines), layout=False)

    # ------------------------------------------------------------------ actions
    @on(Button.Pressed, "#stop")
    def _stop_pressed(self) -> None:
        self.action_stop()

    def action_stop(self) -> None:
        if not self.feed.live:
            self.notify("this run is followed from its directory: stop it where it runs", severity="warning")
        elif self.feed.stop():
            self.notify("stopping: the run is evaluated as it stands and marked stopped")
        else:
            self.notify("the run has already ended")

    def action_chart(self, key: str) -> None:
        """Change how the charts are drawn (all of them at once, on every tab)."""
        self.chart_view = self.chart_view.changed(key)
        for chart in self.query(LineChart):
            chart.set_view(self.chart_view)

    def action_neurons(self) -> None:
        """Inspect the shown run's neurons (from the profiles its final evaluation wrote)."""
        from collapse_tui.tui.screens.neurons import NeuronScreen

        run_dir = self.feed.directory_of(self.run_state)  # where it is now, not where it was written
        if run_dir is None:
            self.notify("no run to inspect yet", severity="warning")
            return
        self.app.push_screen(NeuronScreen(run_dir))

    def action_next_threshold(self) -> None:
        self.threshold_index += 1

    def watch_threshold_index(self) -> None:
        if self.is_mounted:
            self.redraw()

    def action_tab(self, tab: str) -> None:
        self.query_one("#panels", TabbedContent).active = tab

    def action_back(self) -> None:
        self.app.pop_screen()
