"""``collapse-tui --export tensorboard DIR OUT``: every scalar of a run's events and its final metrics read
back with TensorBoard's own reader at the steps the events carry; a sweep's runs carry their varied
settings as HParams sessions under an experiment that lists them. Runs that cannot be read are skipped
in one line each; everything else that cannot be exported is refused in one line, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collapse_tui import cli
from collapse_tui import events as ev
from collapse_tui.metrics.specs import SPECS, dead_keys, dead_spec
from collapse_tui.store import layout, load_run, read_events
from tests.unit.export_world import RUNS, build_sweep, run_name

pytest.importorskip("tensorboard")

from tensorboard.backend.event_processing import plugin_event_multiplexer  # noqa: E402
from tensorboard.plugins.hparams import metadata as hparams_metadata  # noqa: E402
from tensorboard.util import tensor_util  # noqa: E402


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    return build_sweep(tmp_path_factory.mktemp("world"))


def _export(args: list[str], capsys) -> tuple[int, str, str]:
    status = cli.main(["--export", "tensorboard", *map(str, args)])
    said = capsys.readouterr()
    return status, said.out.strip(), said.err.strip()


def _read(out: Path) -> plugin_event_multiplexer.EventMultiplexer:
    """What TensorBoard reads from ``out``."""
    reader = plugin_event_multiplexer.EventMultiplexer()
    reader.AddRunsFromDirectory(str(out))
    reader.Reload()
    return reader


def _scalars(reader, run: str) -> dict[str, dict[int, float]]:
    found = {}
    for tag in reader.Runs()[run]["tensors"]:
        if not tag.startswith("_hparams_"):
            found[tag] = {e.step: float(tensor_util.make_ndarray(e.tensor_proto)) for e in reader.Tensors(run, tag)}
    return found


def _expected(run_dir: Path) -> dict[str, dict[int, float]]:
    """Every number of the run's events at the step it carries, and its summary's final metrics."""
    expected: dict[str, dict[int, float]] = {}
    for event in read_events(run_dir)[0]:
        if isinstance(event, ev.Progress) and event.logs:
            rows = [("step", event.done, event.logs)]
        elif isinstance(event, ev.EpochEnd):
            rows = [("epoch", event.epoch, {**event.logs, "sparsity": event.sparsity})]
        elif isinstance(event, ev.Evaluation):
            rows = [("eval", event.epoch, event.metrics)]
        else:
            continue
        for kind, step, values in rows:
            for key, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    expected.setdefault(f"{event.phase}/{kind}/{key}", {})[step] = float(value)
    summary = load_run(run_dir).summary
    step = summary.get("evaluated_at_epoch") or max(expected["sae/eval/dead_fraction"])
    for spec in [*SPECS, *map(dead_spec, dead_keys([summary["final"]]))]:
        if spec.value(summary) is not None:
            expected[f"final/{spec.key}"] = {step: float(spec.value(summary))}
    return expected


def _float32(values: dict[str, dict[int, float]]) -> dict[str, dict[int, float]]:
    """TensorBoard keeps a scalar as a float32."""
    import numpy as np

    return {tag: {step: float(np.float32(v)) for step, v in points.items()} for tag, points in values.items()}


def test_every_scalar_of_every_run_reads_back_at_its_step(sweep, tmp_path, capsys):
    out = tmp_path / "tb"
    status, said, err = _export([sweep, out], capsys)
    assert status == 0 and err == ""
    assert "\n" not in said and "3 runs" in said and str(out) in said, said
    reader = _read(out)
    for run_dir in (sweep.parent.parent / run_name(i) for i, spec in enumerate(RUNS)):
        found = _scalars(reader, run_dir.name)
        expected = _float32(_expected(run_dir))
        assert found == expected
        assert {"sae/step/loss", "sae/epoch/dead_in_training", "sae/eval/dead_fraction", "vae/eval/mig",
                "final/dead_fraction", "final/mig_vae", "final/dead@0.001"} <= set(found)


def test_a_sweep_is_an_hparams_experiment_of_its_varied_settings(sweep, tmp_path, capsys):
    out = tmp_path / "tb"
    assert _export([sweep, out], capsys)[0] == 0
    content = _read(out).PluginRunToTagToContent(hparams_metadata.PLUGIN_NAME)
    experiment = hparams_metadata.parse_experiment_plugin_data(content["."][hparams_metadata.EXPERIMENT_TAG])
    hparams = {info.name for info in experiment.hparam_infos}
    assert {"sae.method", "sae.k", "seed", "sae.remedies.auxk"} <= hparams and "name" not in hparams
    metrics = [info.name.tag for info in experiment.metric_infos]
    assert metrics[0] == "final/dead_fraction" and "final/explained_variance" in metrics
    for i, (name, method, _, seed, auxk) in enumerate(RUNS):
        run = run_name(i)
        start = hparams_metadata.parse_session_start_info_plugin_data(
            content[run][hparams_metadata.SESSION_START_INFO_TAG])
        assert start.group_name == run
        assert start.hparams["sae.method"].string_value == method
        assert start.hparams["seed"].number_value == seed
        assert start.hparams["sae.remedies.auxk"].bool_value is auxk
        assert hparams_metadata.SESSION_END_INFO_TAG in content[run]
    assert start.hparams["sae.l1_coefficient"].number_value == pytest.approx(0.3)


def test_a_single_run_has_its_scalars_and_no_hparams(sweep, tmp_path, capsys):
    run_dir = layout.runs_dir_of_sweep(sweep) / run_name(0)
    out = tmp_path / "one"
    status, said, _ = _export([run_dir, out], capsys)
    assert status == 0 and "1 run of" in said and "HParams" not in said
    reader = _read(out)
    assert sorted(reader.Runs()) == [run_dir.name]
    assert _scalars(reader, run_dir.name) == _float32(_expected(run_dir))
    assert reader.PluginRunToTagToContent(hparams_metadata.PLUGIN_NAME) == {}


def test_a_runs_dir_exports_its_runs_and_exporting_again_replaces_them(sweep, tmp_path, capsys):
    runs_dir = layout.runs_dir_of_sweep(sweep)
    out = tmp_path / "all"
    for _ in range(2):
        status, said, _ = _export([runs_dir, out], capsys)
        assert status == 0 and f"3 runs of {runs_dir}" in said
    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert files == sorted([layout.TENSORBOARD_EVENTS_FILE] + [
        f"{run_name(i)}/{layout.TENSORBOARD_EVENTS_FILE}" for i in range(len(RUNS))])
    reader = _read(out)
    run = run_name(1)
    assert len(reader.Tensors(run, "sae/eval/dead_fraction")) == 3  # one point an evaluation, not two


def test_an_unreadable_run_is_skipped_in_one_line(sweep, tmp_path, capsys):
    import shutil

    runs_dir = tmp_path / "runs"
    shutil.copytree(layout.runs_dir_of_sweep(sweep), runs_dir)
    damaged = runs_dir / run_name(1)
    (damaged / layout.SUMMARY_FILE).write_text('{"status": "ok", "final": ')
    with (runs_dir / run_name(2) / layout.EVENTS_FILE).open("a") as fh:
        fh.write('{"type": "evaluation", "phase": "sae", "epoch": "x", "metrics": {}}\nnot json\n')
    out = tmp_path / "tb"
    status, said, err = _export([runs_dir, out], capsys)
    assert status == 1, (said, err)
    assert err.splitlines() == [line for line in err.splitlines() if "skipped" in line and damaged.name in line]
    assert len(err.splitlines()) == 1 and "summary.json" in err and "Traceback" not in err
    assert "2 runs" in said and "skipped 1" in said and "\n" not in said
    assert sorted(_read(out).Runs()) == [".", run_name(0), run_name(2)]
    # A damaged run given alone is refused.
    status, said, err = _export([damaged, tmp_path / "alone"], capsys)
    assert status == 2 and said == "" and len(err.splitlines()) == 1 and "summary.json" in err


def test_what_cannot_be_exported_is_refused_in_one_line(sweep, tmp_path, capsys, monkeypatch):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [([tmp_path / "missing", tmp_path / "o"], "is not a run, sweep or runs directory"),
             ([a_file, tmp_path / "o"], "is not a run, sweep or runs directory"),
             ([empty, tmp_path / "o"], "holds no runs"),
             ([sweep, a_file], "exists and is not a directory")]
    for args, message in cases:
        status, said, err = _export(args, capsys)
        assert status == 2 and said == "", args
        assert "\n" not in err and message in err and "Traceback" not in err, err
    assert not (tmp_path / "o").exists()
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if the extra were not installed
    status, said, err = _export([sweep, tmp_path / "o"], capsys)
    assert status == 2 and "\n" not in err and "pip install 'collapse-tui[tensorboard]'" in err


def test_the_help_lists_the_formats(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    said = " ".join(capsys.readouterr().out.split())
    assert "saelens" in said and "tensorboard" in said and "wandb" in said


def test_the_export_needs_neither_tensorflow_nor_keras(sweep, tmp_path):
    """TensorBoard alone writes the files: the export runs the same on the JAX and torch backends."""
    code = ("import sys; from collapse_tui.interop import export_run\n"
            f"assert export_run('tensorboard', {str(sweep)!r}, {str(tmp_path / 'tb')!r}) == 0\n"
            "print(sorted(m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(file=st.sampled_from([layout.EVENTS_FILE, layout.SUMMARY_FILE, layout.CONFIG_FILE]),
       cut=st.floats(0, 1), junk=st.binary(max_size=64))
def test_a_damaged_run_file_is_exported_or_refused_in_one_line(sweep, tmp_path_factory, file, cut, junk):
    """A run's file cut short with bytes of anything after it: its run is exported from what can be read
    (a damaged events line is left out) or refused in one line naming the file, never a traceback."""
    import contextlib
    import io
    import shutil

    root = tmp_path_factory.mktemp("damaged")
    run_dir = root / run_name(0)
    shutil.copytree(layout.runs_dir_of_sweep(sweep) / run_name(0), run_dir)
    data = (run_dir / file).read_bytes()
    (run_dir / file).write_bytes(data[:int(len(data) * cut)] + junk)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main(["--export", "tensorboard", str(run_dir), str(root / "tb")])
    said = (out.getvalue() + err.getvalue()).strip()
    assert "\n" not in said and "Traceback" not in said, said
    if status == 0:
        assert layout.tensorboard_events(root / "tb", run_dir.name).is_file()
    else:
        assert status == 2 and file in said, said
