"""Where everything the tool writes lives: the one module that names the files and folders of a run
directory, a sweep directory and the models directory.

Every other module asks here for a path (``run_file(run_dir, SUMMARY_FILE)``, ``sweep_dir_of(runs_dir)``,
``vae_model(models_dir, key)``) instead of spelling a file name, so that a layout is changed in one place
and a reader and a writer can never disagree on a name (``tests/unit/test_layout.py`` fails on a file
name spelled anywhere else). Pure names and path arithmetic: nothing here touches the disk.

    <runs_dir>/<YYYYmmdd-HHMMSS>-<name>/     a run (RUN_FILES)
        config.yaml  events.jsonl  summary.json  listing.json  sae.keras  neurons.npz  checkpoint.npz
        decoders.npz  (checkpoint.set-aside.npz)
    <runs_dir>/sweeps/<YYYYmmdd-HHMMSS>-<name>/   a sweep (SWEEP_FILES)
        sweep.json  plan.json  results.md  results.csv  paired.csv  runs.jsonl  STOP  tasks/<task>.json
    <models_dir>/                             trained VAEs, shared by runs
        vae-<key>.keras  vae-<key>.checkpoint.npz  vae-<key>.lock
        (vae-<key>.set-aside.keras  vae-<key>.checkpoint.set-aside.npz)
    <any directory>/                          an SAE in SAELens' layout (written and read), or sparsify's (read)
        cfg.json  sae_weights.safetensors  |  cfg.json  sae.safetensors
    <out_dir>/                                runs exported for TensorBoard (--export tensorboard)
        events.out.tfevents.collapse-tui     the experiment's HParams config (a sweep or runs dir)
        <run>/events.out.tfevents.collapse-tui   a run's scalars (and its HParams session)
"""

from __future__ import annotations

import time
from pathlib import Path

# ---------------------------------------------------------------------- a run directory
CONFIG_FILE = "config.yaml"  # the resolved config plus the environment (backend, versions, data source)
EVENTS_FILE = "events.jsonl"  # one JSON event a line, flushed as written; its mtime is the heartbeat
SUMMARY_FILE = "summary.json"  # status, final metrics, durations; replaced atomically
LISTING_FILE = "listing.json"  # config.yaml as JSON, checked against it: how runs are listed fast
SAE_FILE = "sae.keras"  # the trained sparse autoencoder
NEURONS_FILE = "neurons.npz"  # per-neuron profiles of the final evaluation
CHECKPOINT_FILE = "checkpoint.npz"  # what a stopped run resumes from; deleted when the run finishes
SET_ASIDE_CHECKPOINT = "checkpoint.set-aside.npz"  # a checkpoint that could not be resumed, kept to look at
RESUME_LOCK = "resume.lock"  # held by the process resuming the run (or the sweep), with its PID inside
DECODERS_FILE = "decoders.npz"  # the decoder directions at each evaluation mark, and the first mark's codes
RUN_FILES = (CONFIG_FILE, EVENTS_FILE, SUMMARY_FILE, LISTING_FILE, SAE_FILE, NEURONS_FILE, CHECKPOINT_FILE,
             DECODERS_FILE, SET_ASIDE_CHECKPOINT, RESUME_LOCK)

# ---------------------------------------------------------------------- a sweep directory
SWEEPS_DIR = "sweeps"  # in a runs dir: the sweep directories (never a run)
SWEEP_FILE = "sweep.json"  # the config file a sweep ran and the run directories it made so far
PLAN_FILE = "plan.json"  # every run of the sweep as a resolved config, in order: what --resume finishes
RESULTS_MD = "results.md"  # the sweep's results tables
RESULTS_CSV = "results.csv"
PAIRED_CSV = "paired.csv"  # each remedy row against the plain SAE at its settings, paired by seed
RUNS_JSONL = "runs.jsonl"  # one line per finished run, appended as each ends
STOP_FILE = "STOP"  # present: every task of a sweep on a cluster stops
TASKS_DIR = "tasks"  # the run directories each task of a sweep on a cluster started, one file a task
SWEEP_FILES = (SWEEP_FILE, PLAN_FILE, RESULTS_MD, RESULTS_CSV, PAIRED_CSV, RUNS_JSONL, STOP_FILE, TASKS_DIR,
               RESUME_LOCK)

# ---------------------------------------------------------------------- the models directory
_VAE_PREFIX = "vae-"
_VAE_MODEL_SUFFIX = ".keras"
_VAE_CHECKPOINT_SUFFIX = ".checkpoint.npz"
_LOCK_SUFFIX = ".lock"
_SET_ASIDE = ".set-aside"  # before the extension: a file that could not be used, kept to look at

# ---------------------------------------------------------------------- an SAE in another library's layout
SAELENS_CONFIG_FILE = "cfg.json"  # SAELens' (and sparsify's) config of an SAE, a JSON object
SAELENS_WEIGHTS_FILE = "sae_weights.safetensors"  # SAELens' weights of an SAE
SPARSIFY_WEIGHTS_FILE = "sae.safetensors"  # sparsify's weights of an SAE (read, never written)

# ---------------------------------------------------------------------- runs exported for other tools
# TensorBoard reads every file whose name holds "tfevents". One fixed name a folder, so that exporting
# again replaces what the last export wrote instead of adding a second copy of every point beside it.
TENSORBOARD_EVENTS_FILE = "events.out.tfevents.collapse-tui"

# ---------------------------------------------------------------------- temporaries
_TMP = "tmp"  # save_model's ".<stem>.<pid>.tmp<suffix>" beside its target


def stamped_name(name: str, now: float | None = None, attempt: int = 1) -> str:
    """A run or sweep directory's name: ``<YYYYmmdd-HHMMSS>-<name>``, with ``-<attempt>`` after a clash."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now if now is not None else time.time()))
    return f"{stamp}-{name}" + (f"-{attempt}" if attempt > 1 else "")


def tensorboard_events(out_dir: str | Path, run: str | None = None) -> Path:
    """The event file of the exported run named ``run`` (its run directory's name) under ``out_dir``, or
    of the experiment itself (its HParams config) at ``out_dir``'s root when ``run`` is None."""
    return (Path(out_dir) if run is None else Path(out_dir) / run) / TENSORBOARD_EVENTS_FILE


def run_file(run_dir: str | Path, name: str) -> Path:
    """One of a run directory's files (:data:`RUN_FILES`)."""
    if name not in RUN_FILES:
        raise ValueError(f"{name!r} is not a file of a run directory")
    return Path(run_dir) / name


def is_run_entry(name: str) -> bool:
    """Whether an entry of a runs dir (a directory) may be a run: not hidden, not the sweeps dir."""
    return not name.startswith(".") and name != SWEEPS_DIR


def sweeps_dir(runs_dir: str | Path) -> Path:
    """Where a runs dir keeps its sweep directories."""
    return Path(runs_dir) / SWEEPS_DIR


def runs_dir_of_sweep(sweep_dir: str | Path) -> Path:
    """The runs dir a sweep directory lives in (``<runs_dir>/sweeps/<sweep>``)."""
    return Path(sweep_dir).parent.parent


def sweep_file(sweep_dir: str | Path, name: str) -> Path:
    """One of a sweep directory's files (:data:`SWEEP_FILES`)."""
    if name not in SWEEP_FILES:
        raise ValueError(f"{name!r} is not a file of a sweep directory")
    return Path(sweep_dir) / name


def task_file(sweep_dir: str | Path, task: int | str) -> Path:
    """The record of the run directories one task of a sweep on a cluster started."""
    return Path(sweep_dir) / TASKS_DIR / f"{task}.json"


def vae_model(models_dir: str | Path, key: str) -> Path:
    """The trained VAE of the settings ``key`` identifies."""
    return Path(models_dir) / f"{_VAE_PREFIX}{key}{_VAE_MODEL_SUFFIX}"


def vae_model_key(path: str | Path) -> str | None:
    """The key of the trained VAE at ``path`` (any directory), None when its name is not a trained VAE's."""
    name = Path(path).name
    if name.startswith(_VAE_PREFIX) and name.endswith(_VAE_MODEL_SUFFIX) and len(name) > len(_VAE_PREFIX + _VAE_MODEL_SUFFIX):
        key = name[len(_VAE_PREFIX):-len(_VAE_MODEL_SUFFIX)]
        return None if is_set_aside(key) else key
    return None


def vae_checkpoint(models_dir: str | Path, key: str) -> Path:
    """What training the VAE of ``key`` resumes from (replaced after each epoch)."""
    return Path(models_dir) / f"{_VAE_PREFIX}{key}{_VAE_CHECKPOINT_SUFFIX}"


def vae_lock(models_dir: str | Path, key: str) -> Path:
    """The lock held while the VAE of ``key`` is trained (one process trains it, the others wait)."""
    return Path(models_dir) / f"{_VAE_PREFIX}{key}{_LOCK_SUFFIX}"


def vae_checkpoints(models_dir: str | Path) -> list[Path]:
    """Every VAE checkpoint in ``models_dir`` (none set aside)."""
    found = Path(models_dir).glob(f"{_VAE_PREFIX}*{_VAE_CHECKPOINT_SUFFIX}")
    return sorted(path for path in found if not is_set_aside(path.name))


def vae_models(models_dir: str | Path) -> list[Path]:
    """Every trained VAE in ``models_dir`` (none set aside)."""
    return sorted(path for path in Path(models_dir).glob(f"{_VAE_PREFIX}*{_VAE_MODEL_SUFFIX}")
                  if not is_set_aside(path.name))


def set_aside(path: str | Path) -> Path:
    """Where a file of the models directory that cannot be used is moved to be kept (to look at, never to be
    read again): ``vae-<key>.set-aside.keras`` for ``vae-<key>.keras``, ``vae-<key>.checkpoint.set-aside.npz``
    for its checkpoint."""
    path = Path(path)
    return path.with_name(f"{path.stem}{_SET_ASIDE}{path.suffix}")


def is_set_aside(name: str) -> bool:
    """Whether the file (or key) ``name`` is one :func:`set_aside` named."""
    return _SET_ASIDE in name


def atomic_temporary_prefix(target: Path) -> str:
    """The name prefix of :func:`~collapse_tui.store.files.write_atomic`'s temporary beside ``target``."""
    return f".{target.name}."


def model_temporary(target: Path, pid: int) -> Path:
    """Where :func:`~collapse_tui.store.files.save_model` writes ``target`` before renaming it."""
    return target.with_name(f".{target.stem}.{pid}.{_TMP}{target.suffix}")


def temporary_pid(path: Path) -> int | None:
    """The process that wrote the temporary :func:`model_temporary` named ``path``; None for any other."""
    parts = path.name.split(".")
    if len(parts) >= 4 and parts[0] == "" and parts[-2] == _TMP and parts[-3].isdigit():
        return int(parts[-3])
    return None
