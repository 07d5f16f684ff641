"""Pre-flight: what is refused before any run starts, the same for every front end (``--batch``,
``--resume``, the terminal UI's Start), each problem in one line.

Refused: a sweep larger than :data:`~collapse_tui.config.LARGE_SWEEP` runs not confirmed, a
``data_parallel`` setting that cannot run (:func:`~collapse_tui.engine.distribution.check_data_parallel`),
a bad :data:`~collapse_tui.engine.torch_compile.TORCH_COMPILE_VARIABLE`, a Keras precision (floatx) runs
cannot train in (:func:`~collapse_tui.engine.precision.precision_problem`), Ray options or a missing Ray, a
data file that is not there, a model of the user's (``sae.model``) that cannot give its layer, and runs or
models directories that cannot be written. The directories are checked (created when missing)
only once nothing else is wrong, so a refused start leaves nothing behind.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from collapse_tui.config import LARGE_SWEEP, RunConfig


def preflight(configs: Iterable[RunConfig], *, resume: Sequence[tuple] = (), large_sweep_confirmed: bool = False,
              ray=None) -> list[str]:
    """The problems that keep runs from starting, one line each; empty when they can start.

    ``configs``: the runs to start (``runs_dir`` and ``models_dir`` checked); ``resume``: the runs to
    resume, as :func:`~collapse_tui.engine.runner.resume_plan` made them (their own directories checked,
    not their ``runs_dir``). ``large_sweep_confirmed``: more than :data:`LARGE_SWEEP` runs may start
    (``--yes``). ``ray``: a :class:`~collapse_tui.engine.ray_sweep.RayOptions` when the runs go to Ray."""
    configs = list(configs)
    everything = configs + [plan[1] for plan in resume]
    problems = []
    if len(configs) > LARGE_SWEEP and not large_sweep_confirmed:
        problems.append(f"the sweep expands to {len(configs):,} runs; check it with --dry-run, then pass --yes "
                        "to run them all")
    problems += _data_parallel(everything) + _torch_compile() + (_precision() if everything else [])
    problems += _data_files(everything) + _models(everything)
    if ray is not None:
        problems += _ray(ray)
    if problems:
        return problems
    directories = [p for cfg in configs for p in (cfg.runs_dir, cfg.models_dir)]
    directories += [p for run_dir, cfg, _ in resume for p in (run_dir, cfg.models_dir)]
    return [f"cannot write runs: {problem}" for problem in _unwritable(directories)]


def _data_parallel(configs: list[RunConfig]) -> list[str]:
    from collapse_tui.engine.distribution import check_data_parallel

    try:
        check_data_parallel(configs)
    except ValueError as exc:
        return [str(exc)]
    return []


def _torch_compile() -> list[str]:
    from collapse_tui.engine.torch_compile import torch_compile_setting

    try:
        torch_compile_setting()
    except ValueError as exc:
        return [str(exc)]
    return []


def _precision() -> list[str]:
    from collapse_tui.engine.precision import precision_problem

    problem = precision_problem()
    return [problem] if problem else []


def _data_files(configs: list[RunConfig]) -> list[str]:
    """A user's data file (an activations file, a labelled image set) that is not there."""
    from collapse_tui.config import FILE_DATASETS

    problems = []
    for path in dict.fromkeys(cfg.data.path for cfg in configs if cfg.data.dataset in FILE_DATASETS):
        if not Path(path).is_file():
            problems.append(f"data.path: {path}: {'not a regular file' if Path(path).exists() else 'no such file'}")
    return problems


def _models(configs: list[RunConfig]) -> list[str]:
    """A model of the user's (sae.model) that cannot give its layer sae.source: loaded here once per file,
    so a bad file is one line before any run starts rather than a failure in each."""
    from collapse_tui.engine.model_phase import ModelError, layer_model, load_model

    problems, loaded = [], {}
    for model_path, layer in dict.fromkeys((cfg.sae.model, cfg.sae.source) for cfg in configs if cfg.sae.model):
        path = Path(model_path)
        if model_path not in loaded:
            try:
                loaded[model_path] = load_model(path)
            except ModelError as exc:
                loaded[model_path] = None
                problems.append(str(exc))
        if loaded[model_path] is None:
            continue
        try:
            layer_model(loaded[model_path], layer, path)
        except ModelError as exc:
            problems.append(str(exc))
    return problems


def _ray(options) -> list[str]:
    from collapse_tui.engine.ray_sweep import RAY_MISSING, ray_available

    problems = options.problems() or ([] if ray_available() else [RAY_MISSING])
    return [f"cannot run on Ray: {'; '.join(problems)}"] if problems else []


def _unwritable(directories: Iterable[str | Path]) -> list[str]:
    from collapse_tui.store import writable_dir_problem

    problems = []
    for directory in dict.fromkeys(str(d) for d in directories):
        problem = writable_dir_problem(directory)
        if problem:
            problems.append(problem)
    return problems
