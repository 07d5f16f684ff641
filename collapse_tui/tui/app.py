"""The collapse-tui terminal application: configure, train live, follow, list and compare runs.

It reads and writes the same run directories as ``--batch``: training runs in a thread worker through
the same engine (whose run store writes the directory), and any run directory can be opened and
followed while another process writes it.
"""

from __future__ import annotations

import contextlib
import os
from importlib import resources
from pathlib import Path
from typing import Any, Iterable

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen

from collapse_tui.config.presets import DEFAULT_PRESET as DEFAULT_PRESET_NAME
from collapse_tui.config.presets import preset_dir
from collapse_tui.tui.hangup import HangUp, guard_app
from collapse_tui.tui.screens.configure import ConfigureScreen, find_presets
from collapse_tui.tui.screens.help import HelpScreen
from collapse_tui.tui.screens.run import RunScreen
from collapse_tui.tui.screens.runs import RunsScreen
from collapse_tui.tui.user_configs import user_config_dir
from collapse_tui.tui.feeds import FileFeed, LiveFeed, SweepFeed

DEFAULT_PRESET = f"{DEFAULT_PRESET_NAME}.yaml"


def load_keras() -> Any:
    """Import keras (and its backend) with native start-up chatter held back (native libraries print
    start-up lines to fd 2, which would scribble over the screen; the hold is safe from any thread)."""
    from collapse_tui.engine.native_logs import quiet_native_logs

    with quiet_native_logs():
        import keras

    return keras


def feed_for(path: str | Path) -> FileFeed | SweepFeed:
    """What following ``path`` reads: a sweep directory as the sweep; a run directory as itself, unless
    it is the latest run of a sweep not yet finished (following it then follows the sweep on)."""
    from collapse_tui.store import is_sweep_dir, load_run, load_sweep, sweep_of

    path = Path(path)
    if is_sweep_dir(path):
        return SweepFeed(path)
    sweep = sweep_of(path)
    if sweep is not None:
        try:
            record, runs = load_run(path), load_sweep(sweep)
            latest = runs.runs and Path(runs.runs[-1]).resolve() == path.resolve()
            if latest and (record.status == "running" or len(runs.runs) < runs.n_runs):
                return SweepFeed(sweep)
        except ValueError:
            pass
    return FileFeed(path)


class TrainingNotice(Message):
    """A notification from the training thread, posted: the thread never waits for the UI to show it
    (once the terminal is gone the event loop may never get to it, and the thread must still end)."""

    def __init__(self, text: str, **options: Any) -> None:
        super().__init__()
        self.text, self.options = text, options


class CollapseApp(App):
    """The TUI. ``runs_dir``: where runs are listed (and, when given, written); ``config_path``: a YAML
    config to load into the form; ``presets_dir``: where presets are found (default ``./configs``, the
    user's config directory, where the form saves, then the presets shipped in the package); ``environment_label``: fixed header text instead of probing Keras."""

    TITLE = "collapse-tui"
    # Package data, read the way an installed wheel has it (an absolute path: subclasses live elsewhere).
    CSS_PATH = str(resources.files("collapse_tui.tui").joinpath("app.tcss"))
    BINDINGS = [
        Binding("f1,question_mark", "help", "Help"),
        Binding("f2", "show_configure", "Configure"),
        Binding("f3", "show_runs", "Runs"),
        Binding("f4", "show_live", "Live run"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(self, runs_dir: str | None = None, config_path: str | None = None,
                 presets_dir: str | Path | None = None, environment_label: str | None = None,
                 follow: str | Path | None = None, compare: list | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.follow = follow
        self.compare = compare  # run records to open the compare screen on
        self.runs_dir_arg = runs_dir
        self.config_path = config_path
        dirs = [Path(presets_dir)] if presets_dir is not None else [Path.cwd() / "configs", user_config_dir(),
                                                                    preset_dir()]
        self.presets = find_presets(*dirs)
        self.initial_preset = DEFAULT_PRESET if DEFAULT_PRESET in self.presets else next(iter(self.presets), None)
        if config_path is not None:
            path = Path(config_path)
            self.presets = {path.name: path, **{k: v for k, v in self.presets.items() if k != path.name}}
            self.initial_preset = path.name
        self.environment_label = environment_label
        self.training: LiveFeed | None = None
        self.live_screen: RunScreen | None = None
        self._quitting = False
        self.hang_up: HangUp | None = None  # how the app ends on SIGHUP, SIGTERM or a terminal gone

    @property
    def runs_dir(self) -> Path:
        """The runs dir the runs table shows: the one given, else the form's ``runs_dir``."""
        if self.runs_dir_arg:
            return Path(self.runs_dir_arg)
        try:
            screen = self.get_configure_screen()
            value = screen.form_data().get("runs_dir")
            if value:
                return Path(value)
        except Exception:  # the form is not built yet
            pass
        return Path("runs")

    # ------------------------------------------------------------------ start-up
    def on_mount(self) -> None:
        self.hang_up = guard_app(self)
        if self.environment_label is not None:
            self.sub_title = self.environment_label
        else:
            self.sub_title = f"{os.environ.get('KERAS_BACKEND', 'tensorflow')} · loading Keras…"
            # After the first paint: importing Keras holds the interpreter for seconds, and started at
            # once it would keep the screen blank until it is done.
            self.call_after_refresh(self._probe_environment)
        self.push_screen(ConfigureScreen(self.presets, self.initial_preset, runs_dir=self.runs_dir_arg))
        if self.follow is not None:
            self.open_run(self.follow)
        if self.compare:
            from collapse_tui.tui.screens.compare import CompareScreen

            self.push_screen(CompareScreen(self.compare, export_dir=self.runs_dir))

    @work(thread=True, exit_on_error=False, group="probe")
    def _probe_environment(self) -> None:
        """Loading Keras takes seconds: do it off the UI thread, then show backend and device."""
        from collapse_tui.engine.environment import device_name

        keras = load_keras()
        label = f"{keras.backend.backend()} · {device_name()}"
        self.call_from_thread(setattr, self, "sub_title", label)

    def get_configure_screen(self) -> ConfigureScreen:
        for screen in self.screen_stack:
            if isinstance(screen, ConfigureScreen):
                return screen
        raise LookupError("no configure screen")

    # ------------------------------------------------------------------ training
    def preflight(self, runs: list, resume: list | None = None, large_sweep_confirmed: bool = False) -> list[str]:
        """Why ``runs`` (``config.expand`` output) or ``resume`` (:func:`~collapse_tui.engine.runner.
        resume_plan` tuples) cannot start, one line each, as ``--batch`` and ``--resume`` say it
        (:mod:`~collapse_tui.engine.preflight`); empty when they can."""
        try:
            load_keras()  # the checks ask the engine, which imports Keras: its start-up lines held back
        except Exception as exc:  # a backend installed but broken: a line on the screen, not a dead TUI
            detail = " ".join(str(exc).split()) or type(exc).__name__
            return [f"Keras cannot load its backend ({os.environ.get('KERAS_BACKEND') or 'keras.json'}): "
                    f"{detail[:300]}"]
        from collapse_tui.engine.preflight import preflight

        return preflight([cfg for cfg, _ in runs], resume=resume or (), large_sweep_confirmed=large_sweep_confirmed)

    def start_training(self, runs: list, resume: list | None = None,
                       large_sweep_confirmed: bool = False) -> LiveFeed | None:
        """Train ``runs`` (``config.expand`` output) in a thread worker and show the live screen; with
        ``resume`` (:func:`~collapse_tui.engine.runner.resume_plan` tuples), go on with those stopped or
        crashed runs instead. None, and a notification saying why, when nothing started: a run is in
        progress, or the pre-flight refused (:meth:`preflight`)."""
        if self.training is not None and self.training.running:
            self.notify("a run is already in progress: stop it first (s on its screen)", severity="warning")
            self.action_show_live()
            return None
        held = contextlib.ExitStack()
        if resume:
            # One writer per run, as with --resume: a run another process resumes is refused here, and
            # one resumed here is refused there, from now until it ends training (the worker lets go).
            from collapse_tui.store import LockHeld, resume_locks

            try:
                held.enter_context(resume_locks([Path(plan[0]) for plan in resume]))
            except LockHeld as exc:
                self.notify(f"cannot resume: {exc}", title="cannot start", severity="error", markup=False)
                return None
        try:
            problems = self.preflight(runs, resume, large_sweep_confirmed)
        except BaseException:
            held.close()
            raise
        if problems:
            held.close()
            self.notify("\n".join(problems), title="cannot start", severity="error", markup=False)
            return None
        if self.hang_up is not None and self.hang_up.began:  # the process is ending (a hang-up came meanwhile)
            held.close()
            return None
        feed = LiveFeed(runs, resume=resume)
        self.training = feed
        self.live_screen = RunScreen(feed)
        self.push_screen(self.live_screen)
        self._train(feed, held)
        return feed

    @work(thread=True, exclusive=True, exit_on_error=False, group="training")
    def _train(self, feed: LiveFeed, held: contextlib.ExitStack | None = None) -> None:
        """Train what ``feed`` holds; ``held``: the locks its resumed runs hold, let go when it ends."""
        from collapse_tui.engine.sweep import run_sweep

        try:
            load_keras()
            if feed.resume:
                from collapse_tui.engine.runner import Engine

                results = Engine(feed.stop_event).resume(feed.resume, [feed.listener])
            else:  # a sweep of several runs gets its directory and results table, as with --batch
                results = run_sweep(feed.runs, [feed.listener], stop_event=feed.stop_event,
                                    stop_after_bank=feed.stop_after_bank)
            statuses = [r.status for r in results]
            message = ", ".join(f"{statuses.count(s)} {s}" for s in dict.fromkeys(statuses))
            self.post_message(TrainingNotice(f"{len(results)} run(s) ended: {message}", title="training"))
        except Exception as exc:  # the engine records run failures; this is anything around it
            feed.error = f"{type(exc).__name__}: {exc}"
            self.post_message(TrainingNotice(feed.error, title="training failed", severity="error"))
        finally:
            if held is not None:
                held.close()
            feed.finished = True
            if feed.notify is not None:
                feed.notify()

    def on_training_notice(self, notice: TrainingNotice) -> None:
        self.notify(notice.text, **notice.options)

    async def action_quit(self) -> None:
        """Quit; a run in progress is stopped first (evaluated as it stands, kept as ``stopped``).
        A second quit while it stops does not wait."""
        if self.training is not None and self.training.running and not self._quitting:
            self._quitting = True
            self.training.stop()
            self.notify("stopping the run in progress, then quitting…")
            self.set_interval(0.2, self._exit_when_stopped)
            return
        self.exit()

    def _exit_when_stopped(self) -> None:
        if self.training is None or not self.training.running:
            self.exit()

    def on_unmount(self) -> None:
        # The training thread must end for the process to exit: never leave it running.
        if self.training is not None:
            self.training.stop()

    # ------------------------------------------------------------------ navigation
    def _pop_to(self, kind: type[Screen]) -> bool:
        if not any(isinstance(s, kind) for s in self.screen_stack):
            return False
        while not isinstance(self.screen, kind):
            self.pop_screen()
        return True

    def action_show_configure(self) -> None:
        self._pop_to(ConfigureScreen)

    def action_show_runs(self) -> None:
        if not self._pop_to(RunsScreen):
            self.push_screen(RunsScreen(self.runs_dir))

    def action_show_live(self) -> None:
        if self.training is None:
            self.notify("no run started in this session: start one from the configure screen (F2)")
            return
        if self.live_screen is not None and self.live_screen in self.screen_stack:
            while self.screen is not self.live_screen:
                self.pop_screen()
            return
        self.live_screen = RunScreen(self.training)
        self.push_screen(self.live_screen)

    def open_run(self, run_dir: str | Path) -> RunScreen:
        """Show a run directory, following it while it grows; a sweep directory, or the latest run of a
        sweep still going, is followed as the sweep: the view moves on to each run it starts."""
        screen = RunScreen(feed_for(run_dir))
        self.push_screen(screen)
        return screen

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def deliver_screenshot(self, filename: str | None = None, path: str | None = None,
                           time_format: str | None = None) -> str | None:
        # Textual saves to ~/Downloads by default, which a server often lacks (the save then fails);
        # the runs dir is where the compare exports go too.
        if path is None and not self.is_web:
            target = self.runs_dir
            try:
                target.mkdir(parents=True, exist_ok=True)
                path = str(target)
            except OSError:
                path = str(Path.cwd())
        return super().deliver_screenshot(filename, path, time_format)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Configure", "Edit a run config and start it", self.action_show_configure)
        yield SystemCommand("Runs", "List, open, compare and delete runs", self.action_show_runs)
        yield SystemCommand("Live run", "Show the run in progress", self.action_show_live)
        yield SystemCommand("Help", "Keys and what the panels show", self.action_help)
        if isinstance(screen, RunScreen):
            yield SystemCommand("Stop run", "Stop the run in progress (it is marked stopped)", screen.action_stop)
            yield SystemCommand("Next threshold", "Dead fraction at the next threshold", screen.action_next_threshold)
        if isinstance(screen, ConfigureScreen):
            yield SystemCommand("Start", "Start training the form's config", screen.action_start)
            yield SystemCommand("Save as YAML", "Write the form to a YAML file", screen.action_save)


def run_app(runs_dir: str | None = None, config_path: str | None = None, follow: str | None = None,
            compare: list | None = None) -> int:
    """Run the TUI until the user quits; returns the process exit status. ``follow``: a run directory
    to show first; ``compare``: run records to compare first (Escape leads back to the configure screen)."""
    app = CollapseApp(runs_dir=runs_dir, config_path=config_path, follow=follow, compare=compare)
    app.run()
    if app.hang_up is not None and app.hang_up.status is not None:
        return app.hang_up.status  # stopped by a signal, as --batch says it
    return int(app.return_code or 0)
