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
from textual.widgets import Button, Footer, Header, Label, ProgressBar, Static, TabbedContent, TabPane

from collapse_tui.config import sparsity_label as _sparsity_label
from collapse_tui.metrics.specs import spec, threshold_key
from collapse_tui.tui.feeds import EventFeed
from collapse_tui.tui.screens.base import AppScreen
from collapse_tui.tui.state import LOSS_TERMS, RunState, dead_neurons, format_seconds
from collapse_tui.tui.widgets.chart_view import CHART_BINDINGS, ChartView
from collapse_tui.tui.widgets.charts import PALETTE, Heatmap, Histogram, LineChart, Series

REDRAW_HZ = 4
SECONDS = spec("seconds")
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


def ended_text(state: RunState) -> str:
    """What a run that ended says instead of its phase (its status is beside it): how far its SAE got, and
    for how long it ran."""
    sae_epochs = max((e for e, _ in state.sae_loss), default=0)
    planned = (state.config.get("sae") or {}).get("epochs") if isinstance(state.config.get("sae"), dict) else None
    trained = f"SAE epoch {sae_epochs}/{planned}" if planned else f"SAE epoch {sae_epochs}"
    seconds = SECONDS.value(state.summary)
    took = f" · {format_seconds(seconds)}" if seconds is not None else ""
    if state.status == "stopped":
        return f"{trained}, evaluated as it stood{took}"
    if state.status == "ok":
        return f"{trained}{took}"
    if state.status == "crashed":
        return f"crashed after {trained}: {state.reason or 'its process is gone'}"
    return f"failed: {state.reason}" if state.reason else "failed"


def waiting_text(state: RunState, live: bool) -> str:
    """What an empty chart says before its first point: the phase under way and how far it is."""
    if not state.phase:
        return "starting: loading Keras and the config…" if live else "no data yet"
    share = f" · {100 * state.done / state.total:.0f}%" if state.total and not state.finished else ""
    return f"now: {phase_text(state)}{share}"


def sparsity_label(state: RunState) -> str:
    if state.sparsity is None:
        return "–"
    return _sparsity_label(state.method, state.sparsity, spaced=True)


class RunScreen(AppScreen):
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
        self._last_followed: int | None = None
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
        self.query_one("#stop", Button).display = self.can_stop
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
    def followed(self) -> int:
        """The run the view follows: the first of those training now (a bank's runs train together: its
        first), else the latest."""
        states = self.feed.states
        training = next((i for i, s in enumerate(states) if not s.finished), None)
        if training is not None:
            self._last_followed = training
        elif self._last_followed is None or self._last_followed >= len(states):
            return len(states) - 1
        return self._last_followed  # all ended: stay on the run followed last (a stopped bank's first)

    @property
    def training_together(self) -> list[RunState]:
        """The runs training now (one bank)."""
        return [s for s in self.feed.states if s.phase and not s.finished]

    @property
    def position(self) -> int:
        """Index in the feed's runs of the run shown."""
        last = len(self.feed.states) - 1
        return self.followed if self.selected is None else min(self.selected, last)

    @property
    def run_state(self) -> RunState:
        return self.feed.states[self.position] if self.feed.states else RunState()

    def action_previous_run(self) -> None:
        if self.position > 0:
            self._select(self.position - 1)

    def action_next_run(self) -> None:
        if self.position < len(self.feed.states) - 1:
            self._select(self.position + 1)

    def _select(self, index: int) -> None:
        # Back on the run followed: follow it again as the sweep moves on.
        self.selected = None if index == self.followed else index
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
        together = len(self.training_together)
        which = f"run {self.position + 1}/{n_runs}" + (f" ({together} train together)" if together > 1 else "")
        which = which + "  " if n_runs > 1 else ""
        status = state.status if state.phase or state.finished else "starting"
        if self.feed.live and self.feed.running and self.feed.stop_event.is_set() and not state.finished:
            status = "stopping"
        phase = ended_text(state) if state.finished else phase_text(state)
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
        if not self.feed.live and not state.finished and self.feed.running:
            parts.insert(0, "followed: stop it where it runs")
        # The phase's ETA starts again with each phase; the run's and the sweep's count down across them.
        run_eta = self.feed.run_eta(state, now=time.time() if self.feed.live else None)
        if run_eta is not None and (run_eta[1] or eta is None or abs(run_eta[0] - eta) >= 1.0):
            parts.append(f"run {'≥' if run_eta[1] else '~'}{format_seconds(run_eta[0])}")
        sweep_eta = self.feed.sweep_eta() if self.feed.running else None
        if sweep_eta is not None:
            parts.append(f"sweep ~{format_seconds(sweep_eta)}")
        eta_text = " · ".join(parts)
        can_stop = self.can_stop
        if state.finished:
            eta_text = ""  # an ended run has no time left, nor progress to show
        head = (title, total, done, eta_text, can_stop, state.finished)
        if head == self._drawn_head:
            return  # unchanged: no widget update, no repaint
        self._drawn_head = head
        self.query_one("#run-title", Static).update(title, layout=False)
        self.query_one("#bar", ProgressBar).update(total=total, progress=done)
        self.query_one("#bar", ProgressBar).display = not state.finished
        # Its width follows its text (a sweep's ETA is longer): a layout only when the length changes.
        label = self.query_one("#eta", Label)
        label.update(eta_text, layout=len(eta_text) != len(str(label.content)))
        self.query_one("#stop", Button).display = can_stop
        if self.can_stop != getattr(self, "_footer_can_stop", None):
            self._footer_can_stop = can_stop
            self.refresh_bindings()  # the footer shows s only while there is something to stop

    def _update_loss(self, state: RunState) -> None:
        # A VAE trained earlier with the same config is loaded, not trained: it has no curve here.
        past_vae = state.phase in ("codes", "sae", "evaluate") or state.finished
        waiting = waiting_text(state, self.feed.live)
        self.query_one("#vae-loss", LineChart).set_series(
            loss_series(state.loss_curves("vae")),
            empty="VAE loaded, not trained in this run" if past_vae else waiting)
        self.query_one("#sae-loss", LineChart).set_series(loss_series(state.loss_curves("sae")), empty=waiting)

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

    @property
    def can_stop(self) -> bool:
        """Only this process can stop what it trains: a followed run is stopped where it runs."""
        return self.feed.live and self.feed.running

    def check_action(self, action: str, parameters: tuple) -> bool | None:
        if action == "stop":
            return self.can_stop  # hidden from the footer when there is nothing this screen can stop
        return True

    def action_stop(self) -> None:
        """Ask what to stop (the runs training now, or the sweep after them), naming them."""
        from collapse_tui.tui.screens.choose import ChooseScreen
        from collapse_tui.tui.screens.stop_dialog import KEEP, stop_choices

        if not self.feed.live:
            self.notify("this run is followed from its directory: stop it where it runs", severity="warning")
            return
        if not self.feed.running:
            self.notify("the run has already ended")
            return
        title, choices = stop_choices(self.training_together or [self.run_state], self.feed.planned,
                                      len(self.feed.states), can_finish_bank=not self.feed.resume)
        self.app.push_screen(ChooseScreen(title, choices, current=KEEP), self._stop_chosen)

    def _stop_chosen(self, choice: str | None) -> None:
        if choice == "now" and self.feed.stop():
            self.notify("stopping: evaluated as it stands and marked stopped")
        elif choice == "after_bank" and self.feed.running:
            self.feed.stop_after_bank.set()
            self.notify("the runs training now will finish; no more start (the rest: --resume the sweep)")

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
