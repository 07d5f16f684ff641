"""Moving SAEs and runs between this tool and others: ``collapse-tui --export saelens RUN_DIR OUT_DIR``
writes a finished run's SAE in SAELens' on-disk layout (:func:`collapse_tui.store.saelens.export_saelens`), so
SAELens (and what loads its files) reads the dictionary this tool trained and measured; ``--export
tensorboard DIR OUT_DIR`` and ``--export wandb DIR OUT_DIR`` write the runs of a run, sweep or runs
directory where researchers already look at runs (TensorBoard event files with HParams, W&B offline runs);
``collapse-tui --import-sae SAE_DIR CONFIG`` measures a SAELens or sparsify SAE as a run on CONFIG's data (an
activations file, with its factors if it has them), each run of CONFIG's sweep its own split of the rows."""

from __future__ import annotations

import sys
from pathlib import Path

EXPORT_FORMATS = ("saelens", "tensorboard", "wandb")
# The formats that write every run of a directory, and the optional package (and extra) each needs.
RUN_FORMATS = {"tensorboard": "tensorboard", "wandb": "wandb"}


def export_run(fmt: str, run_dir: str, out_dir: str) -> int:
    """Write the SAE of the run in ``run_dir`` to ``out_dir`` in format ``fmt`` (or, for TensorBoard and
    W&B, the runs ``run_dir`` holds: :func:`export_runs`); one line on success (what was written) or on
    failure (why), and the exit status (0, or 2 for anything refused)."""
    from collapse_tui.store import load_run
    from collapse_tui.store.layout import SAE_FILE, SAELENS_CONFIG_FILE, SAELENS_WEIGHTS_FILE, run_file

    if fmt not in EXPORT_FORMATS:
        return _refused(f"--export: unknown format {fmt!r} (known: {', '.join(EXPORT_FORMATS)})")
    if fmt in RUN_FORMATS:
        return export_runs(fmt, run_dir, out_dir)
    source = Path(run_dir)
    if not source.is_dir():
        return _refused(f"--export: {run_dir} is not a run directory")
    try:
        record = load_run(source)
    except ValueError as exc:
        return _refused(f"--export: {exc}")
    path = run_file(source, SAE_FILE)
    if not path.is_file():
        return _refused(f"--export: {source.name} has no trained SAE ({SAE_FILE}; status {record.status})")
    target = Path(out_dir)
    if target.exists() and not target.is_dir():
        return _refused(f"--export: {out_dir} exists and is not a directory")
    try:
        sae = _load_sae(path)
        from collapse_tui.store.saelens import export_saelens

        export_saelens(sae, target)
    except (ValueError, OSError) as exc:
        return _refused(f"--export: {path}: {_one_line(exc)}")
    print(f"wrote {target / SAELENS_CONFIG_FILE} and {SAELENS_WEIGHTS_FILE}: the {sae.method} SAE of {source.name} "
          f"({sae.input_dim} inputs, {sae.n_neurons} neurons), in SAELens' layout")
    return 0


def export_runs(fmt: str, directory: str, out_dir: str) -> int:
    """Write the runs of ``directory`` (a run, a sweep or a runs dir) under ``out_dir`` for TensorBoard or
    W&B. A line naming each run that could not be read (it is skipped), then one saying what was written;
    the exit status: 0, 1 when a run was skipped, 2 for anything refused (no such package, no runs, an
    ``out_dir`` that cannot hold them)."""
    import importlib

    package = RUN_FORMATS[fmt]
    try:
        importlib.import_module(package)
    except ImportError:
        return _refused(f"--export {fmt}: the {package} package is not installed "
                        f"(pip install 'collapse-tui[{package}]')")
    from collapse_tui.store import writable_dir_problem
    from collapse_tui.store.run_scalars import final_tags, read_source, varied_settings

    target = Path(out_dir)
    if target.exists() and not target.is_dir():
        return _refused(f"--export: {out_dir} exists and is not a directory")
    try:
        source = read_source(directory)
    except ValueError as exc:
        return _refused(f"--export: {_one_line(exc)}")
    for name, why in source.skipped:
        print(f"collapse-tui: --export {fmt}: skipped {name}: {why}", file=sys.stderr)
    if not source.runs:
        return _refused(f"--export: no run of {directory} could be read ({len(source.skipped)} skipped)")
    problem = writable_dir_problem(target)
    if problem:
        return _refused(f"--export: {problem}")
    try:
        if fmt == "tensorboard":
            from collapse_tui.store.tensorboard_export import write_tensorboard

            write_tensorboard(source, target)
        else:
            from collapse_tui.store.wandb_export import write_wandb

            written = write_wandb(source, target)
    except Exception as exc:  # the other tool's own errors too (a protobuf, wandb's): said in one line
        return _refused(f"--export {fmt}: {out_dir}: {type(exc).__name__}: {_one_line(exc)}")
    n = len(source.runs)
    runs = f"{n} run{'s' if n != 1 else ''} of {directory}"
    skipped = f"; skipped {len(source.skipped)} (above)" if source.skipped else ""
    if fmt == "tensorboard":
        hparams = sorted({key for values in varied_settings(source.runs) for key in values})
        shown = f" ({', '.join(hparams[:6])}{', …' if len(hparams) > 6 else ''})" if hparams else ""
        settings = f"{len(hparams)} varied setting{'s' if len(hparams) != 1 else ''}{shown}"
        table = f", with HParams of {settings} and {len(final_tags(source.runs))} final metrics" if source.collection else ""
        print(f"wrote TensorBoard event files of {runs} to {target}{table}{skipped}: tensorboard --logdir {target}")
    else:
        where = written[0].parent if written else target
        print(f"wrote W&B offline runs of {runs} to {where}{skipped}: wandb sync {where}/offline-run-*")
    return 1 if source.skipped else 0


def import_runs(sae_dir: str, config_path: str, runs_dir: str | None = None) -> int:
    """Measure the SAE in ``sae_dir`` on the data of each run ``config_path`` expands to; one line per run
    (its status and headline numbers, or why it failed) and the exit status: 0 when every run is ok, 1 when
    one failed, 2 for a refused SAE directory or config."""
    from collapse_tui.config import ACTIVATIONS, ConfigError, load
    from collapse_tui.engine.runner import Engine
    from collapse_tui.store.saelens import import_saelens

    try:
        runs = load(config_path)
    except ConfigError as exc:
        return _refused(f"--import-sae: {' '.join(str(exc).split())}")
    not_file = [c for c, _ in runs if c.data.dataset != ACTIVATIONS]
    if not_file:
        return _refused(f"--import-sae: {config_path} must read an activations file (data.dataset: activations, "
                        f"data.path), not {not_file[0].data.dataset}: an SAE from elsewhere reads that model's "
                        "activations")
    try:
        sae = import_saelens(sae_dir)
    except ValueError as exc:
        return _refused(f"--import-sae: {_one_line(exc)}")
    engine, failed = Engine(), 0
    for config, _ in runs:
        if runs_dir:
            config = config.model_copy(update={"runs_dir": runs_dir})
        result = engine.evaluate_imported(config, sae, source=str(sae_dir))
        final = result.summary.get("final") or {}
        if result.status == "ok":
            print(f"{result.run_dir}: ok, dead {100 * final.get('dead_fraction', float('nan')):.1f}%, "
                  f"L0 {final.get('l0', float('nan')):.1f}, EV {final.get('explained_variance', float('nan')):.3f}")
        else:
            failed += 1
            print(f"{result.run_dir}: {result.status}: {result.summary.get('reason')}", file=sys.stderr)
    return 1 if failed else 0


def _load_sae(path: Path):
    """The run's trained SAE; ValueError in one line when the file is not one."""
    from collapse_tui.engine.environment import quiet_native_logs

    with quiet_native_logs():
        import keras

    from collapse_tui.nn import SparseAutoencoder

    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # a damaged zip, a foreign file: whatever Keras raises, said in one line
        raise ValueError(f"not a readable Keras SAE ({type(exc).__name__}: {_one_line(exc)})") from exc
    if not isinstance(model, SparseAutoencoder):
        raise ValueError(f"holds a {type(model).__name__}, not a sparse autoencoder")
    return model


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def _refused(message: str) -> int:
    print(f"collapse-tui: {message}", file=sys.stderr)
    return 2
