"""Moving a trained SAE to other tools: ``collapse-tui --export saelens RUN_DIR OUT_DIR`` writes a finished
run's SAE in SAELens' on-disk layout (:func:`collapse_tui.store.saelens.export_saelens`), so SAELens (and
what loads its files) reads the dictionary this tool trained and measured."""

from __future__ import annotations

import sys
from pathlib import Path

EXPORT_FORMATS = ("saelens",)


def export_run(fmt: str, run_dir: str, out_dir: str) -> int:
    """Write the SAE of the run in ``run_dir`` to ``out_dir`` in format ``fmt``; one line on success (what
    was written) or on failure (why), and the exit status (0, or 2 for anything refused)."""
    from collapse_tui.store import load_run
    from collapse_tui.store.layout import SAE_FILE, SAELENS_CONFIG_FILE, SAELENS_WEIGHTS_FILE, run_file

    if fmt not in EXPORT_FORMATS:
        return _refused(f"--export: unknown format {fmt!r} (known: {', '.join(EXPORT_FORMATS)})")
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
