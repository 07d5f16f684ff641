"""The process's standard output as the headless front ends write it: it never fails the run it reports.

Two ways it could, both outside the runs' control:

- **a terminal that cannot show a character** (``PYTHONIOENCODING=ascii``, a latin-1 locale): writing
  ``→`` or ``✓`` would raise UnicodeEncodeError. :func:`keep_writable` makes such a stream write an ASCII
  stand-in (``->``, ``ok``) or ``?`` instead.
- **a reader that went away** (``collapse-tui --batch ... | head -1``): the next write raises
  BrokenPipeError, wherever it happens to be. :func:`guarded_output` puts a :class:`GuardedOutput` in
  ``sys.stdout``'s place (and ``sys.stderr``'s: ``2>&1 | head``) that takes the broken pipe as a request
  to stop (as Ctrl-C is: the runs in progress end ``stopped`` and can be resumed) and drops what is
  written after it. A pipe is also watched between writes, so that a run that prints nothing for a
  while still stops promptly.
"""

from __future__ import annotations

import codecs
import contextlib
import os
import select
import stat
import sys
import threading
from typing import Callable, Iterator, TextIO

# The characters the front ends write beyond ASCII, each with what an ASCII terminal shows instead
# (anything else becomes "?"). Most keep to one character, so that a table's columns stay aligned (the
# table was laid out before its text is encoded): λ shares the k / λ column with k; an arrow, a mark and
# ± (every value of a mean ± std column has one) read better spelt out.
STAND_INS = {"→": "->", "←": "<-", "✓": "ok", "✗": "x", "■": "#", "±": "+-", "≥": ">=", "≤": "<=", "λ": "L",
             "–": "-", "—": "-", "−": "-", "…": "~", "×": "x", "≈": "~", "Δ": "d", "·": "."}
STAND_IN_ERRORS = "collapse_tui.stand_in"  # the codec error handler's name


def _stand_in(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    text = error.object[error.start:error.end]
    return "".join(STAND_INS.get(char, "?") for char in text), error.end


codecs.register_error(STAND_IN_ERRORS, _stand_in)


def keep_writable(*streams: TextIO | None) -> None:
    """Let each of ``streams`` whose encoding cannot show every character write a stand-in for the ones
    it cannot (see :data:`STAND_INS`) instead of raising. A UTF encoding, or error handling already
    chosen (``PYTHONIOENCODING=ascii:replace``; stderr's own ``backslashreplace``), is left as it is."""
    for stream in streams:
        encoding = getattr(stream, "encoding", None)
        if not encoding or getattr(stream, "errors", "strict") != "strict":
            continue
        try:
            if not codecs.lookup(encoding).name.startswith("utf"):
                stream.reconfigure(errors=STAND_IN_ERRORS)
        except (LookupError, AttributeError, ValueError, OSError):
            continue  # a stream that cannot be reconfigured (not a TextIOWrapper) writes as it did


class GuardedOutput:
    """A text stream in front of ``stream`` that takes a broken pipe (the reader went away) as a request
    to stop: ``on_reader_gone`` is called once, the write returns as if done, and every later write is
    dropped. The descriptor under ``stream`` is pointed at ``os.devnull`` then, so that what is still
    buffered flushes into nothing at exit instead of raising once more. Everything else is ``stream``'s."""

    def __init__(self, stream: TextIO, on_reader_gone: Callable[[], None]):
        self._stream = stream
        self._on_reader_gone = on_reader_gone
        self._lock = threading.Lock()
        self.reader_gone = threading.Event()

    def write(self, text: str) -> int:
        if not self.reader_gone.is_set():
            try:
                return self._stream.write(text)
            except BrokenPipeError:
                self.lose_reader()
        return len(text)

    def flush(self) -> None:
        if not self.reader_gone.is_set():
            try:
                self._stream.flush()
            except BrokenPipeError:
                self.lose_reader()

    def lose_reader(self) -> None:
        """The reader is gone (a write found the pipe broken, or the watch saw it close): say so once."""
        with self._lock:
            if self.reader_gone.is_set():
                return
            self.reader_gone.set()
        with contextlib.suppress(OSError, ValueError, AttributeError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())
            os.close(devnull)
        self._on_reader_gone()

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def _pipe_descriptor(stream: TextIO) -> int | None:
    """``stream``'s file descriptor when it is a pipe or a socket (a reader can close it), else None."""
    try:
        fd = stream.fileno()
        mode = os.fstat(fd).st_mode
    except (OSError, ValueError, AttributeError):
        return None
    return fd if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) else None


def _watch(watched: list[tuple[int, GuardedOutput]], done: threading.Event, interval: float) -> None:
    """Until ``done``: poll each descriptor for its reader closing (POLLERR on a pipe, POLLHUP on a socket)."""
    poller = select.poll()
    outputs = {}
    for fd, output in watched:
        poller.register(fd, 0)  # no events asked for: the error and hang-up conditions are always reported
        outputs[fd] = output
    while outputs and not done.is_set():
        for fd, events in poller.poll(interval * 1000):
            if events & (select.POLLERR | select.POLLHUP) and fd in outputs:
                poller.unregister(fd)
                outputs.pop(fd).lose_reader()


@contextlib.contextmanager
def guarded_output(on_reader_gone: Callable[[], None], interval: float = 0.5) -> Iterator[threading.Event]:
    """For the block, ``sys.stdout`` and ``sys.stderr`` (each unless a terminal, which has no reader to
    lose: its hang-up comes as SIGHUP) are each put behind a :class:`GuardedOutput`; ``on_reader_gone``
    is called once the first of their readers has gone, found by a write or by polling the pipe every
    ``interval`` seconds. Yields an event set from then on. The streams are put back after."""
    gone = threading.Event()

    def first_gone() -> None:
        if not gone.is_set():
            gone.set()
            on_reader_gone()

    guarded = {name: GuardedOutput(stream, first_gone) for name in ("stdout", "stderr")
               if (stream := getattr(sys, name)) is not None and not stream.isatty()}
    watched = [(fd, output) for output in guarded.values()
               if hasattr(select, "poll") and (fd := _pipe_descriptor(output._stream)) is not None]
    done = threading.Event()
    if watched:
        threading.Thread(target=_watch, args=(watched, done, interval), daemon=True, name="output-reader-watch").start()
    originals = {name: getattr(sys, name) for name in guarded}
    for name, output in guarded.items():
        setattr(sys, name, output)
    try:
        yield gone
    finally:
        done.set()
        for name, output in guarded.items():
            if getattr(sys, name) is output:
                setattr(sys, name, originals[name])
