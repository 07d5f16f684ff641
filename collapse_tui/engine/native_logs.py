"""Holding back what native code writes to file descriptor 2 (TensorFlow's C++ start-up lines, which
recent releases print whatever TF_CPP_MIN_LOG_LEVEL says), safely from any thread.

File descriptor 2 belongs to the whole process, so the hold is one for all threads: the first block to
enter swaps fd 2 for a temporary file, blocks entered meanwhile (nested in one thread, or in another
thread: the TUI's and the training thread's) share that hold, and the last one to leave puts the
original fd 2 back, once. The lock guards only the swap and the count, never the block itself, so no
thread waits for another's block and a nested block cannot deadlock.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from typing import IO, Iterator

_LOCK = threading.RLock()
_depth = 0  # blocks inside the hold, over all threads
_saved: int | None = None  # a duplicate of the original fd 2, while held
_held: IO[bytes] | None = None  # what fd 2 points at while held
_shown = 0  # bytes of _held already shown (by a block that raised while others were still inside)


def _flush_stderr() -> None:
    try:
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass


def _enter() -> bool:
    """Join the hold, starting it if none is on; False where stderr is unusable (nothing to quieten)."""
    global _depth, _saved, _held, _shown
    with _LOCK:
        if _depth == 0:
            try:
                _flush_stderr()
                saved = os.dup(2)
            except (OSError, ValueError, AttributeError):  # no usable stderr
                return False
            held = tempfile.TemporaryFile()
            try:
                os.dup2(held.fileno(), 2)
            except OSError:
                held.close()
                os.close(saved)
                return False
            _saved, _held, _shown = saved, held, 0
        _depth += 1
        return True


def _leave(show: bool) -> None:
    """Leave the hold, ending it if this was the last block inside; with ``show`` (the block raised),
    what was held back and not yet shown is written to the original stderr."""
    global _depth, _saved, _held, _shown
    with _LOCK:
        _flush_stderr()  # Python's own writes of the block belong to the hold
        assert _held is not None and _saved is not None
        text = b""
        if show:
            end = os.fstat(_held.fileno()).st_size
            text = os.pread(_held.fileno(), end - _shown, _shown) if end > _shown else b""
            _shown = end
        _depth -= 1
        if _depth == 0:
            os.dup2(_saved, 2)
            os.close(_saved)
            _held.close()
            _saved, _held = None, None
            if text:
                sys.stderr.write(text.decode(errors="replace"))
                _flush_stderr()
        elif text:
            os.write(_saved, text)  # others still hold fd 2: straight to the original


@contextlib.contextmanager
def quiet_native_logs() -> Iterator[None]:
    """Hold back what native code writes to fd 2 during the block; it is shown if the block raises.
    Safe from any thread and nested (see the module's description)."""
    if not _enter():
        yield
        return
    try:
        yield
    except BaseException:
        _leave(show=True)
        raise
    _leave(show=False)
