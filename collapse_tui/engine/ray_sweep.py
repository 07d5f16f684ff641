"""A sweep on a Ray cluster: each bank of the sweep is one Ray task.

The driver (this process) keeps the sweep's directory and tables, as :func:`~collapse_tui.engine.sweep.run_sweep`
does; the tasks, on any node, train their bank with an :class:`~collapse_tui.engine.runner.Engine` of their
own and write the same run directories into the same runs directory, which therefore has to be one
the nodes share (as must ``models_dir``: a VAE is trained once, by whichever task needs it first, under
a lock, and loaded by the others). The tasks' events come back to the driver through a Ray queue, so
the console shows them as it shows local runs.

A task whose worker dies is retried by Ray; the retry resumes the runs its first attempt started (the
task keeps their directories in ``tasks/<n>.json`` under the sweep's directory). A stop (Ctrl-C) writes
``STOP`` into the sweep's directory: tasks that are training stop between two steps and keep what they
measured (their runs end ``stopped``), tasks that have not begun start nothing, and ``collapse-tui
--resume SWEEP_DIR`` finishes the sweep later, here or on the cluster.

Ray is an optional dependency (``pip install 'collapse-tui[ray]'``); nothing here imports it at module
level.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from collapse_tui.config import RunConfig
from collapse_tui.engine.banks import bank_groups
from collapse_tui.engine.active_run import RunResult
from collapse_tui.events import Event, Listener, RunStarted
from collapse_tui.store.layout import STOP_FILE, sweep_file, task_file

RAY_MISSING = "Ray is not installed: pip install 'collapse-tui[ray]' (or pip install ray)"
# What the tasks inherit from the driver's environment: the backend, and the app's own settings
# (dataset and cache directories). A cluster's workers start with their node's environment, not ours.
FORWARDED_ENV = ("KERAS_BACKEND", "TF_CPP_MIN_LOG_LEVEL", "XLA_FLAGS")
FORWARDED_PREFIX = "COLLAPSE_TUI_"
# How often a running task looks for the stop file, and how long a stopping driver waits for its tasks.
STOP_POLL_SECONDS = 0.5
STOP_GRACE_SECONDS = 300.0
# How long a cluster's address has to accept a connection before the sweep is refused: Ray's own connect
# to an address nothing answers at retries for many minutes.
PROBE_SECONDS = 5.0


@dataclass
class RayOptions:
    """Where and how the tasks run. ``address``: None starts a Ray instance on this machine for the
    sweep (with all its CPUs and GPUs), else the cluster to join (``auto``, ``HOST:PORT``,
    ``ray://HOST:PORT``). ``cpus`` and ``gpus``: each task's resources (fractions of a GPU let several
    banks share one). ``max_retries``: how often a task whose worker died is started again."""

    address: str | None = None
    cpus: float = 1.0
    gpus: float = 0.0
    max_retries: int = 2

    def problems(self) -> list[str]:
        out = []
        if not self.cpus > 0:
            out.append(f"--ray-cpus must be > 0, got {self.cpus:g}")
        if self.gpus < 0:
            out.append(f"--ray-gpus must be ≥ 0, got {self.gpus:g}")
        if self.max_retries < 0:
            out.append(f"--ray-retries must be ≥ 0, got {self.max_retries}")
        unreachable = None if out else address_problem(self.address)
        return out + ([unreachable] if unreachable else [])


def address_problem(address: str | None) -> str | None:
    """Why nothing can be sent to the cluster at ``address`` (``HOST:PORT`` or ``ray://HOST:PORT``): it
    does not accept a TCP connection within :data:`PROBE_SECONDS`. None when it does, or when Ray finds
    the cluster itself (no address: a local instance; ``auto``)."""
    if not address or ("://" in address and not address.startswith("ray://")):
        return None
    host, _, port = address.removeprefix("ray://").rpartition(":")
    host = host.strip("[]")  # an IPv6 address: [::1]:6379
    if not host or not port.isdigit():
        return None  # auto, or a form Ray reads on its own
    try:
        socket.create_connection((host, int(port)), timeout=PROBE_SECONDS).close()
    except OSError as exc:
        why = ("connection refused" if isinstance(exc, ConnectionRefusedError)
               else f"no answer within {PROBE_SECONDS:g} s" if isinstance(exc, TimeoutError)
               else exc.strerror or str(exc))
        return f"no Ray cluster answers at {address} ({why}); start one there (ray start --head) or give its address"
    return None


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def task_environment(gpus: float, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment variables a task gets from the driver (:data:`FORWARDED_ENV`, ``COLLAPSE_TUI_*``).
    A task given a fraction of a GPU must not take all its memory, as TensorFlow and JAX do by default."""
    import keras

    environ = dict(os.environ if environ is None else environ)
    env = {k: v for k, v in environ.items() if k in FORWARDED_ENV or k.startswith(FORWARDED_PREFIX)}
    env["KERAS_BACKEND"] = keras.backend.backend()  # as the driver resolved it
    if 0 < gpus < 1:
        env.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
        env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    return env


# ---------------------------------------------------------------------------------------- the task


def _watch_stop(stop_file: Path, stop: threading.Event, done: threading.Event) -> None:
    while not done.wait(STOP_POLL_SECONDS):
        if stop_file.exists():
            stop.set()
            return


class _TaskRecord:
    """A listener that keeps the run directories a task started, in its configs' order, in
    ``tasks/<n>.json``: what a retry of the task resumes."""

    def __init__(self, path: Path):
        self.path = path
        self.runs: list[str] = []

    def __call__(self, event: Event) -> None:
        from collapse_tui.store import write_atomic

        if isinstance(event, RunStarted):
            self.runs.append(event.run_dir)
            write_atomic(self.path, json.dumps({"runs": self.runs}))


def _earlier_attempt(path: Path) -> list[str]:
    try:
        runs = json.loads(path.read_text())["runs"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    return [str(r) for r in runs] if isinstance(runs, list) else []


def train_bank_task(configs: Sequence[RunConfig], sweep_dir: str, task: int, queue=None) -> list[RunResult]:
    """One bank of a sweep, where Ray placed it: trained as :meth:`Engine.run_bank` trains it locally,
    its events sent to ``queue`` as well (a ``ray.util.queue.Queue``; None: only to the run directories).
    A retry (its first attempt's worker died) resumes the runs that attempt started; those that had
    finished are returned as they ended. After a stop has been asked for, it starts nothing."""
    from collapse_tui.engine.runner import Engine, resume_plan
    from collapse_tui.engine.sweep import FINISHED
    from collapse_tui.store import load_run

    sweep = Path(sweep_dir)
    stop_file = sweep_file(sweep, STOP_FILE)
    if stop_file.exists():
        return []
    record_path = task_file(sweep, task)
    record_path.parent.mkdir(parents=True, exist_ok=True)
    stop, done = threading.Event(), threading.Event()
    watcher = threading.Thread(target=_watch_stop, args=(stop_file, stop, done), daemon=True)
    watcher.start()
    record = _TaskRecord(record_path)
    listeners: list[Listener] = [record]
    if queue is not None:
        listeners.append(queue.put)
    engine = Engine(stop)
    try:
        earlier = _earlier_attempt(record_path)[:len(configs)]
        if not earlier:
            return engine.run_bank(list(configs), listeners)
        record.runs = list(earlier)  # the runs this attempt adds come after them
        results: dict[int, RunResult] = {}
        plans, resumed = [], []
        for i, run_dir in enumerate(earlier):
            run = load_run(run_dir)
            if run.status in FINISHED:  # "suspect" is a finished run whose metrics are no result: ok
                results[i] = RunResult(status="failed" if run.status == "failed" else "ok", run_dir=Path(run_dir),
                                       summary=run.summary)
            else:
                plans.append(resume_plan(Path(run_dir), writer_gone=True))
                resumed.append(i)
        if plans:
            results.update(zip(resumed, engine.resume(plans, listeners)))
        rest = list(range(len(earlier), len(configs)))
        if rest and not stop.is_set():
            results.update(zip(rest, engine.run_bank([configs[i] for i in rest], listeners)))
        return [results[i] for i in sorted(results)]
    finally:
        done.set()
        try:
            import keras

            keras.backend.clear_session()  # a worker process is reused for the next task
        except Exception:  # pragma: no cover - clean-up only
            pass


# ---------------------------------------------------------------------------------------- the driver


def _start_ray(options: RayOptions) -> bool:
    """Connect to (or start) Ray; True when this call started it (and so shuts it down)."""
    import logging

    import ray

    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    if options.address is None:
        kwargs.update(address="local")
    else:
        kwargs.update(address=options.address)
    with warnings.catch_warnings():
        # Starting Ray's processes forks, then execs at once: JAX's warning about forking a threaded
        # process is about children that go on running Python, which these do not.
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
        ray.init(**kwargs)
    return True


def run_sweep_on_ray(
    runs: Iterable[tuple[RunConfig, dict[str, Any]]],
    options: RayOptions,
    listeners: Iterable[Listener] = (),
    stop_event: threading.Event | None = None,
    config_path: str | None = None,
    say: Callable[[str], None] = lambda text: None,
) -> list[RunResult]:
    """Run the configs as :func:`~collapse_tui.engine.sweep.run_sweep` does, each bank a Ray task (see
    the module's docstring). Results in the configs' order, bank by bank. ``say``: one-line notes for
    the console (where the tasks go, what a stop waits for)."""
    import ray
    from ray.util.queue import Queue

    from collapse_tui.engine.sweep import record_sweep

    runs = list(runs)
    listeners = list(listeners)
    stop_event = stop_event or threading.Event()
    configs = [config for config, _ in runs]
    started_ray = _start_ray(options)  # before the sweep's directory: a cluster not found leaves nothing
    recorder = None
    try:
        recorder = record_sweep(configs, listeners, config_path)
        banks = bank_groups(configs)
        queue = Queue(actor_options={"num_cpus": 0})
        task = ray.remote(train_bank_task).options(
            num_cpus=options.cpus, num_gpus=options.gpus, max_retries=options.max_retries, retry_exceptions=False,
            runtime_env={"env_vars": task_environment(options.gpus)})
        pending = {task.remote([configs[i] for i in bank], str(recorder.path), n, queue): n
                   for n, bank in enumerate(banks)}
        where = options.address or "a Ray instance on this machine"
        say(f"{len(banks)} bank(s) of {len(configs)} run(s) sent to {where} "
            f"({options.cpus:g} CPU{'s' if options.cpus != 1 else ''}"
            + (f", {options.gpus:g} GPU" if options.gpus else "") + " per task)")
        done = _collect(pending, banks, configs, queue, listeners, recorder, stop_event, say)
    finally:
        if started_ray:
            ray.shutdown()
        if recorder is not None:
            recorder.write_tables()
    return [result for n in sorted(done) for result in done[n]]


def _collect(pending: dict, banks: list[list[int]], configs: list[RunConfig], queue, listeners: list[Listener],
             recorder, stop_event: threading.Event, say: Callable[[str], None]) -> dict[int, list[RunResult]]:
    """Wait for the tasks, passing their events on as they come; on a stop, ask every task to stop and
    wait for them to save what they measured."""
    import ray

    done: dict[int, list[RunResult]] = {}
    stopping_since = None
    while pending:
        try:
            if stop_event.is_set() and stopping_since is None:
                stopping_since = _ask_to_stop(recorder.path, len(pending), say)
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.2)
            _pass_on(queue, listeners)
            for ref in ready:
                n = pending.pop(ref)
                done[n] = _task_results(ref, banks[n], configs) or _not_started(banks[n], configs)
                recorder.update()
            if stopping_since is not None and time.monotonic() - stopping_since > STOP_GRACE_SECONDS:
                say(f"{len(pending)} task(s) did not stop within {STOP_GRACE_SECONDS:.0f} s: cancelled")
                for ref in pending:
                    ray.cancel(ref, force=True)
                stopping_since = float("inf")  # cancelled: their results come back as failures
        except KeyboardInterrupt:  # Ctrl-C, SIGTERM: the tasks stop, then the results are reported
            stop_event.set()
    _pass_on(queue, listeners)
    return done


def _ask_to_stop(sweep_dir: Path, n_pending: int, say: Callable[[str], None]) -> float:
    from collapse_tui.store import write_atomic

    write_atomic(sweep_file(sweep_dir, STOP_FILE), "stop asked for at %s\n" % time.strftime("%Y-%m-%d %H:%M:%S"))
    say(f"stopping: {n_pending} task(s) end their runs as stopped, keeping what they measured")
    return time.monotonic()


def _pass_on(queue, listeners: list[Listener]) -> None:
    try:
        n = queue.qsize()
        events = queue.get_nowait_batch(n) if n else []
    except Exception:  # the queue's actor went away: the run directories still have everything
        return
    for event in events:
        for listener in list(listeners):
            try:
                listener(event)
            except Exception:  # a display that fails must not end the sweep
                listeners.remove(listener)


def _placeholder(config: RunConfig, status: str, reason: str, interrupted: bool = False) -> RunResult:
    """A result for a run that has no directory (it never started), named as its run would be."""
    return RunResult(status=status, run_dir=Path(config.runs_dir) / config.name, interrupted=interrupted,
                     summary={"name": config.name, "method": config.sae.method, "reason": reason})


def _not_started(bank: list[int], configs: list[RunConfig]) -> list[RunResult]:
    """A task that found the stop asked for before it began: its runs are stopped before their start
    (the sweep's plan still has them, for --resume)."""
    return [_placeholder(configs[i], "stopped", "stopped before it started", interrupted=True) for i in bank]


def _task_results(ref, bank: list[int], configs: list[RunConfig]) -> list[RunResult]:
    """What a finished task returned; a task that failed for good (its retries spent, or cancelled)
    becomes a failed result per run, named as its runs are."""
    import ray

    try:
        return list(ray.get(ref))
    except (ray.exceptions.RayError, ray.exceptions.TaskCancelledError) as exc:
        reason = f"the Ray task of this bank failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
        return [_placeholder(configs[i], "failed", reason) for i in bank]
