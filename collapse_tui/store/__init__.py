"""Run and sweep directories: the interface between the engine and every front end.

One idea a module:

- :mod:`~collapse_tui.store.layout`: the names of every file and folder the tool writes (the only place
  that spells them);
- :mod:`~collapse_tui.store.files`: atomic writes, bounded reads, locks, stale temporaries;
- :mod:`~collapse_tui.store.liveness`: whether a "running" run still has a process (heartbeat, process
  identity, crashed runs);
- :mod:`~collapse_tui.store.runs`: writing a run directory (RunWriter, RunSummary) and reading its events;
- :mod:`~collapse_tui.store.neurons`: a run's per-neuron profiles (``neurons.npz``), read back checked;
- :mod:`~collapse_tui.store.decoders`: the decoder directions at each evaluation mark (``decoders.npz``);
- :mod:`~collapse_tui.store.listing`: the listing sidecar that lets thousands of runs list in a second;
- :mod:`~collapse_tui.store.records`: reading runs back, checked (RunRecord, load_run, list_runs);
- :mod:`~collapse_tui.store.sweeps`: sweep directories (SweepWriter, SweepRecord, load_sweep, load_plan).

A run or sweep directory is created exclusively and never reused, so nothing is ever overwritten. This
package re-exports the public names of all of them (``from collapse_tui.store import load_run``). The
signal deferral its writers respect lives in :mod:`collapse_tui.interrupts`.
"""

import collapse_tui.store.layout as layout
from collapse_tui.store.files import (FILE_MODE, LockHeld, LockUnusable, dumps, file_lock, jsonable, only_writer, read_bounded, resume_locks,
                                      read_json, remove_stale_temporaries, save_model, writable_dir_problem,
                                      write_atomic)
from collapse_tui.store.decoders import DecoderMarks, read_decoders, write_decoders
from collapse_tui.store.layout import (CHECKPOINT_FILE, CONFIG_FILE, DECODERS_FILE, EVENTS_FILE, LISTING_FILE, NEURONS_FILE,
                                       PAIRED_CSV, PLAN_FILE, RESULTS_CSV, RESULTS_MD, RUNS_JSONL, SAE_FILE,
                                       STOP_FILE, SUMMARY_FILE, SWEEP_FILE, SWEEPS_DIR, TASKS_DIR)
from collapse_tui.store.liveness import (CRASHED, HEARTBEAT, HEARTBEAT_SECONDS, STALE_SECONDS, pid_alive, process_gone,
                                         process_identity)
from collapse_tui.store.records import (CONFIG_EXTRAS, SUSPECT, RunRecord, config_problem, list_runs, load_run,
                                        read_config, read_summary, run_dirs, stored_settings, summary_problem)
from collapse_tui.store.neurons import load_neurons, read_neurons, write_neurons
from collapse_tui.store.runs import RunSummary, RunWriter, create_run_dir, iter_events, read_events
from collapse_tui.store.sweeps import (SweepRecord, SweepWriter, is_sweep_dir, load_plan, load_sweep, sweep_dirs,
                                       sweep_name, sweep_of, sweep_records, sweep_run_dirs)

__all__ = [
    "DECODERS_FILE", "DecoderMarks", "read_decoders", "write_decoders", "LockHeld", "LockUnusable", "only_writer", "resume_locks",
    "CHECKPOINT_FILE", "CONFIG_EXTRAS", "CONFIG_FILE", "CRASHED", "EVENTS_FILE", "FILE_MODE", "HEARTBEAT",
    "HEARTBEAT_SECONDS", "LISTING_FILE", "NEURONS_FILE", "PAIRED_CSV", "PLAN_FILE", "RESULTS_CSV", "RESULTS_MD",
    "RUNS_JSONL", "SAE_FILE", "STALE_SECONDS", "STOP_FILE", "SUMMARY_FILE", "SUSPECT", "SWEEPS_DIR", "SWEEP_FILE",
    "TASKS_DIR", "RunRecord", "RunSummary", "RunWriter", "SweepRecord", "SweepWriter", "config_problem",
    "create_run_dir", "dumps", "file_lock", "is_sweep_dir", "iter_events", "jsonable", "layout", "list_runs",
    "load_neurons", "load_plan", "load_run", "load_sweep", "pid_alive", "process_gone", "process_identity", "read_bounded",
    "read_config", "read_events", "read_json", "read_neurons", "read_summary", "remove_stale_temporaries",
    "run_dirs", "save_model", "stored_settings", "summary_problem", "sweep_dirs", "sweep_name", "sweep_of",
    "sweep_records", "sweep_run_dirs", "writable_dir_problem", "write_atomic", "write_neurons",
]
