"""The TUI, started with a config on a real pseudo-terminal and training under TensorFlow, ends when its
terminal closes or it is told to stop (SIGHUP, SIGTERM): the run in training is stopped and saved as
``stopped`` (resumable) first, and the process exits instead of spinning on a dead terminal."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest

from collapse_tui.store import EVENTS_FILE, load_run
from tests.helpers import tiny_config, write_config

pytest.importorskip("textual")

REPO = Path(__file__).resolve().parents[2]
ROWS, COLUMNS = 30, 100
START_DEADLINE = 240.0  # Keras' import and the tiny VAE on a busy machine, before the SAE trains
EXIT_DEADLINE = 60.0  # from the hang-up to the process's end, the run saved in between
EXIT_STOPPED_BY_SIGNAL = 143  # as the command line's help says: stopped by SIGTERM or SIGHUP
LEAVE_ALTERNATE_SCREEN = b"\x1b[?1049l"


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    """One models dir for the module: the tiny VAE is trained by the first case and loaded by the rest."""
    return tmp_path_factory.mktemp("models")


class Terminal:
    """The master side of a pseudo-terminal the TUI runs on, read all the time as a terminal emulator
    does (a terminal nobody reads would stop the TUI's output, which is another matter)."""

    def __init__(self, fd: int):
        self.fd = fd
        self.output = bytearray()
        self._open = True
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            with self._lock:
                if not self._open:
                    return
                try:
                    ready, _, _ = select.select([self.fd], [], [], 0.1)
                    if ready:
                        self.output.extend(os.read(self.fd, 65536))
                except OSError:  # the TUI's side went away
                    return

    def read_to_end(self, timeout: float = 10.0) -> bytes:
        """Everything the TUI wrote, once it ended (the reader stops where the other side is closed)."""
        self._reader.join(timeout)
        return bytes(self.output)

    def type(self, keys: bytes) -> None:
        os.write(self.fd, keys)

    def close(self) -> None:
        """What closing a terminal window (or ``tmux kill-session``) does: the master side goes away."""
        with self._lock:
            if self._open:
                self._open = False
                os.close(self.fd)


def child_env() -> dict:
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3", TERM="xterm-256color")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def start_controlling(config: Path, cwd: Path) -> tuple[int, Terminal]:
    """The TUI as a shell in a terminal runs it: the pseudo-terminal is its controlling terminal, so
    the kernel sends it SIGHUP (and SIGCONT) when the terminal closes."""
    argv = [sys.executable, "-m", "collapse_tui", str(config)]
    env = child_env()
    pid, fd = pty.fork()
    if pid == 0:  # the child: only what exec needs, then exec (nothing of pytest runs here)
        try:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
            os.chdir(cwd)
            os.execve(sys.executable, argv, env)
        finally:
            os._exit(127)
    return pid, Terminal(fd)


def start_detached(config: Path, cwd: Path) -> tuple[subprocess.Popen, Terminal]:
    """The TUI on a pseudo-terminal that is not its controlling terminal: when that terminal closes, no
    signal comes; the TUI only finds its terminal gone."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "collapse_tui", str(config)], stdin=slave, stdout=slave,
                            stderr=slave, cwd=cwd, env=child_env(), start_new_session=True)
    os.close(slave)
    return proc, Terminal(master)


def sae_trained_an_epoch(runs_dir: Path) -> bool:
    for events in runs_dir.glob(f"*/{EVENTS_FILE}"):
        for line in events.read_text(errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line being written
            if event.get("type") == "epoch_end" and event.get("phase") == "sae":
                return True
    return False


def start_training(terminal: Terminal, runs_dir: Path, exited) -> None:
    """Press ctrl+g (Start) once the form is on screen, again until a run directory appears, and wait
    until the SAE is training."""
    deadline = time.monotonic() + START_DEADLINE
    pressed = 0.0
    while not sae_trained_an_epoch(runs_dir):
        assert exited() is None, f"the TUI ended before training: {bytes(terminal.output[-2000:])!r}"
        assert time.monotonic() < deadline, f"the SAE never trained: {bytes(terminal.output[-2000:])!r}"
        started = runs_dir.is_dir() and any(runs_dir.iterdir())
        if not started and b"Start" in terminal.output and time.monotonic() - pressed > 10:
            terminal.type(b"\x07")  # ctrl+g
            pressed = time.monotonic()
        time.sleep(0.2)


def wait_exit(exited, what: str, terminal: Terminal) -> int:
    deadline = time.monotonic() + EXIT_DEADLINE
    while (status := exited()) is None:
        if time.monotonic() > deadline:
            raise AssertionError(f"the TUI was still running {EXIT_DEADLINE:.0f}s after {what}")
        time.sleep(0.2)
    return status


def assert_run_stopped(runs_dir: Path) -> None:
    (run_dir,) = [p for p in runs_dir.iterdir() if (p / EVENTS_FILE).is_file()]
    assert load_run(run_dir).summary["status"] == "stopped"


def pid_exit(pid: int):
    """For a forked child: its exit status once it ended, else None (a signal's death as -signum)."""
    state = {}

    def exited():
        if "status" not in state:
            done, raw = os.waitpid(pid, os.WNOHANG)
            if done:
                state["status"] = os.waitstatus_to_exitcode(raw)
        return state.get("status")

    return exited


def kill_leftover(pid: int, exited) -> None:
    if exited() is None:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


@pytest.fixture
def config(tmp_path, models_dir) -> Path:
    data = tiny_config(tmp_path, models_dir=str(models_dir), sae={"epochs": 2000}, eval={"every": 0})
    return write_config(tmp_path, data)


@pytest.mark.parametrize("hang_up", ["terminal closed", "SIGHUP", "SIGTERM"])
def test_the_tui_on_its_controlling_terminal_stops_the_run_saves_it_and_exits(tmp_path, config, hang_up):
    runs_dir = tmp_path / "runs"
    pid, terminal = start_controlling(config, tmp_path)
    exited = pid_exit(pid)
    try:
        start_training(terminal, runs_dir, exited)
        if hang_up == "terminal closed":
            terminal.close()
        else:
            os.kill(pid, getattr(signal, hang_up))
        status = wait_exit(exited, hang_up, terminal)
        output = terminal.read_to_end()
    finally:
        kill_leftover(pid, exited)
        terminal.close()
    assert status == EXIT_STOPPED_BY_SIGNAL
    assert_run_stopped(runs_dir)
    if hang_up != "terminal closed":  # a terminal still there is given back as it was: alternate screen left
        assert LEAVE_ALTERNATE_SCREEN in output


def test_a_terminal_that_closes_without_a_hang_up_signal_ends_the_tui_too(tmp_path, config):
    runs_dir = tmp_path / "runs"
    proc, terminal = start_detached(config, tmp_path)
    try:
        start_training(terminal, runs_dir, proc.poll)
        terminal.close()
        status = wait_exit(proc.poll, "the terminal closed", terminal)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        terminal.close()
    assert status == EXIT_STOPPED_BY_SIGNAL
    assert_run_stopped(runs_dir)


STUCK_SAVE = """
import os, signal, sys, time
sys.path.insert(0, {repo!r})
from collapse_tui.tui.hangup import HangUp
stopped = []
HangUp(lambda: stopped.append(True), lambda: False, lambda: None, lambda: None, save_timeout=1.0, grace=0.5).install()
print("ready", flush=True)
while True:  # a run whose save never ends: only the guard's bound ends the process
    time.sleep(0.05)
"""


def test_a_save_that_never_ends_cannot_keep_the_process_alive(tmp_path):
    script = tmp_path / "stuck.py"
    script.write_text(STUCK_SAVE.format(repo=str(REPO)))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(timeout=EXIT_DEADLINE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert status == EXIT_STOPPED_BY_SIGNAL
