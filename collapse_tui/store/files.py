"""Files a reader never sees half-written, and reads that never hang on what a run directory holds.

- :func:`write_atomic` and :func:`save_model` write beside the target and rename, so a reader, a crash or
  a second Ctrl-C never leaves a damaged file;
- :func:`read_bounded` reads a small file of the tool's own at most so many bytes, and only a regular
  file: a symlink to /dev/zero, a FIFO or a huge file becomes a clear ``ValueError``, never a hang;
  :func:`open_regular` opens one to be read in parts (a log), with the same check;
- :func:`file_lock` makes two processes (or two nodes of a cluster) take turns;
- :func:`remove_stale_temporaries` clears what a crash left half-written.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable

import collapse_tui.store.layout as layout
from collapse_tui.interrupts import uninterrupted
from collapse_tui.store.liveness import pid_alive


def jsonable(value: Any) -> Any:
    """numpy scalars/arrays to Python, non-finite floats to None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(data: Any) -> str:
    """Compact JSON of ``data`` as :func:`jsonable` makes it (one line: what events.jsonl holds)."""
    return json.dumps(jsonable(data), separators=(",", ":"), allow_nan=False)


def read_bounded(path: str | Path, limit: int) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them. ``FileNotFoundError`` when it is
    missing; ``ValueError`` naming the problem when it is not a regular file (a FIFO, a device, a
    directory: opened without blocking, never read) or is larger than ``limit``. One ``read`` for a file
    that does not change while it is read (listing thousands of runs reads three files each)."""
    fd = os.open(path, _READ_FLAGS)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file")
        if info.st_size > limit:
            raise ValueError(f"{info.st_size:,} bytes, more than the {limit:,} it may hold")
        data = os.read(fd, info.st_size + 1)
        if len(data) == info.st_size:
            return data
        chunks, size = [data], len(data)  # it changed size since fstat (or the read came back short)
        while data and size <= limit:
            data = os.read(fd, min(limit + 1 - size, 1 << 20))
            chunks.append(data)
            size += len(data)
        if size > limit:
            raise ValueError(f"more than the {limit:,} bytes it may hold")
        return b"".join(chunks)
    finally:
        os.close(fd)


_READ_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def open_regular(path: str | Path) -> BinaryIO:
    """``path`` opened for reading in binary, for a reader that reads it in parts (a log that grows):
    ``FileNotFoundError`` when it is missing, ``ValueError`` when it is not a regular file (a FIFO, whose
    opening would block for ever, a device such as /dev/zero, which never ends, a directory): opened
    without blocking and looked at before anything is read."""
    fd = os.open(path, _READ_FLAGS)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{path}: not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_json(path: Path, limit: int = 64 << 20) -> dict[str, Any]:
    """A JSON object from ``path``; empty if it is missing, unreadable, too large or not an object."""
    try:
        data = json.loads(read_bounded(path, limit).decode("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _file_mode() -> int:
    """The mode a plainly created file gets under the process's umask (read once: setting the umask to
    read it is not thread-safe)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _file_mode()


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write via a temporary file and rename, so a reader never sees a half-written file. The file gets
    the mode any other file of the run gets (mkstemp's own is 0600)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=layout.atomic_temporary_prefix(path), dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        binary = isinstance(text, bytes)
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def writable_dir_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot hold runs (not a directory, cannot be created, not writable), in a few words;
    None when it can. Creates the directory if it is missing."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        return f"{path} is not a directory"
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"{path} is not writable ({exc.strerror or exc})"
    return None


@contextlib.contextmanager
def file_lock(path: str | Path, waiting: Callable[[], None] | None = None, poll_seconds: float = 0.5):
    """Hold an exclusive lock on ``path`` (created if missing) for the ``with`` block: two processes on
    one machine, or on the nodes of a cluster sharing the directory, never do the block at once. A
    process that dies drops its lock with it. While another holds it, ``waiting`` is called every
    ``poll_seconds`` (to say so, or to raise and give up). POSIX record locks (``lockf``), which network
    filesystems carry across nodes; where there are none (Windows) the block runs unlocked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as fh:
        while True:
            try:
                fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if waiting is not None:
                    waiting()
                time.sleep(poll_seconds)
        try:
            yield
        finally:
            fcntl.lockf(fh, fcntl.LOCK_UN)


class LockHeld(Exception):
    """Another process resumes the run (or sweep) whose lock :func:`only_writer` asked for; ``holder``: what it
    wrote there (its PID)."""

    def __init__(self, path: Path, holder: str):
        super().__init__(f"{path.parent} is being resumed by process {holder or '(unknown)'}")
        self.path, self.holder = path, holder


class LockUnusable(LockHeld):
    """What is at a resume lock's path cannot be the lock (a directory, a FIFO, a device, a symlink, which
    writing the PID would follow): nothing is resumed until it is removed. A :class:`LockHeld`, so
    every caller that refuses a held lock refuses this one in one line too."""

    def __init__(self, path: Path, problem: str):
        Exception.__init__(self, f"{path}: {problem}, not the resume lock; remove it to resume")
        self.path, self.holder = path, ""


_LOCK_FLAGS = (os.O_RDWR | os.O_CREAT | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
               | getattr(os, "O_CLOEXEC", 0))


def _open_lock(path: Path):
    """The resume lock at ``path``, created if missing, opened without blocking or following a symlink;
    :class:`LockUnusable` for anything but a regular file."""
    try:
        fd = os.open(path, _LOCK_FLAGS, 0o666)
    except OSError as exc:
        problem = "a symlink" if path.is_symlink() else "a directory" if path.is_dir() else exc.strerror or str(exc)
        raise LockUnusable(path, problem) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise LockUnusable(path, "not a regular file")
    return os.fdopen(fd, "r+b")


@contextlib.contextmanager
def only_writer(path: str | Path):
    """Hold an exclusive lock on ``path`` for the ``with`` block, or raise :class:`LockHeld` at once if another
    process holds it (never wait: two processes resuming one run must not both train it). The holder's
    PID is written into the file, so the refusal can name it. As :func:`file_lock`: POSIX record locks,
    dropped with a process that dies; unlocked where there are none. Whatever the file holds (another
    process's PID, or garbage) is replaced; what is not a regular file is :class:`LockUnusable`."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path = Path(path)
    with _open_lock(path) as fh:
        try:
            fcntl.lockf(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read(64).decode("ascii", "replace").strip()
            raise LockHeld(path, holder if holder.isdigit() else "") from None
        try:
            fh.truncate(0)
            fh.seek(0)
            fh.write(str(os.getpid()).encode())
            fh.flush()
            yield
        finally:
            fh.truncate(0)
            fcntl.lockf(fh, fcntl.LOCK_UN)


@contextlib.contextmanager
def resume_locks(directories):
    """:func:`only_writer` on each run or sweep directory's ``resume.lock`` at once, for the ``with`` block."""
    with contextlib.ExitStack() as held:
        for directory in directories:
            held.enter_context(only_writer(Path(directory) / layout.RESUME_LOCK))
        yield


def save_model(model, path: str | Path) -> None:
    """``model.save(path)`` atomically, without interruption: a reader, a crash or a second Ctrl-C never
    leaves a half-written ``.keras`` file at ``path`` (it is written beside it, then renamed)."""
    path = Path(path)
    tmp = layout.model_temporary(path, os.getpid())
    with uninterrupted():
        try:
            model.save(tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)


def remove_stale_temporaries(directory: str | Path, everything: bool = False) -> list[Path]:
    """Remove what writes cut short by a crash left in ``directory``: ``save_model``'s temporaries
    (``.<name>.<pid>.tmp.<ext>``) whose process is gone, or, with ``everything`` (a run directory no
    process is writing), every hidden file. Returns what was removed."""
    removed = []
    for path in Path(directory).glob(".*"):
        if not path.is_file():
            continue
        pid = layout.temporary_pid(path)
        if everything or (pid is not None and not pid_alive(pid)):
            with contextlib.suppress(OSError):
                path.unlink()
                removed.append(path)
    return removed


def load_npz_bounded(path: Path, limit: int, keys: Iterable[str] | None = None) -> dict[str, Any]:
    """The arrays of the ``.npz`` at ``path`` (those named in ``keys``, or all), read only when the file
    and each array it holds claim at most ``limit`` bytes, and never unpickled. Raises what a damaged
    archive raises (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile...): the caller names the
    file in its one line."""
    import numpy as np

    if os.stat(path).st_size > limit:
        raise ValueError(f"larger than {limit} bytes")
    with np.load(path, allow_pickle=False) as data:
        if not hasattr(data, "files"):
            raise ValueError("not an .npz archive")
        for key in data.files:
            claimed = data.zip.getinfo(f"{key}.npy").file_size
            if claimed > limit:
                raise ValueError(f"array {key!r} claims {claimed} bytes")
        wanted = set(data.files) if keys is None else set(keys)
        return {key: data[key] for key in data.files if key in wanted}
