import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import keras
import pytest
import yaml

from collapse_tui import cli, store
from tests.helpers import tiny_config, write_config

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args, timeout=300, **kwargs):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    env.update(kwargs.pop("env", {}))
    return subprocess.run([sys.executable, "-m", "collapse_tui", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT, **kwargs)


def test_the_terminal_ui_without_a_terminal_says_to_use_batch():
    # Run from a pipe (no tty), the UI would draw into nothing: usage and the headless alternative instead.
    out = run_cli(stdin=subprocess.DEVNULL)
    assert out.returncode == 2
    assert "needs an interactive terminal" in out.stderr and "--batch CONFIG" in out.stderr


def test_the_terminal_ui_gets_its_config_runs_dir_and_followed_run(monkeypatch, tmp_path, capsys):
    from collapse_tui.tui import app

    calls = []
    monkeypatch.setattr(app, "run_app", lambda **kw: calls.append(kw) or 0)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    config = write_config(tmp_path, tiny_config(tmp_path))
    run_dir = tmp_path / "runs" / "20250101-000000-tiny"
    run_dir.mkdir(parents=True)
    (run_dir / "events.jsonl").write_text("")  # as another process has just begun writing it
    assert cli.main([str(config), "--runs-dir", str(tmp_path / "runs"), "--follow", str(run_dir)]) == 0
    assert calls == [{"runs_dir": str(tmp_path / "runs"), "config_path": str(config), "follow": str(run_dir),
                      "compare": None}]
    assert cli.main([str(tmp_path / "nope.yaml")]) == 2
    assert "config file" in capsys.readouterr().err and len(calls) == 1


def test_help_explains_the_options():
    out = run_cli("--help")
    assert out.returncode == 0 and "exit status" in out.stdout and "KERAS_BACKEND" in out.stdout


def test_prepare_tfds_needs_a_manual_dir_holding_the_official_file(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--prepare-tfds", "dsprites"])
    assert exit_info.value.code == 2 and "--manual-dir" in capsys.readouterr().err
    empty = tmp_path / "manual"
    empty.mkdir()
    assert cli.main(["--prepare-tfds", "shapes3d", "--manual-dir", str(empty),
                     "--data-dir", str(tmp_path / "tfds")]) == 1
    err = capsys.readouterr().err
    assert "3dshapes.h5" in err and str(empty) in err
    assert not (tmp_path / "tfds" / "shapes3d").exists()  # nothing half-prepared, nothing downloaded


def test_invalid_config_exits_2_naming_the_field(tmp_path, capsys):
    path = write_config(tmp_path, tiny_config(tmp_path, sae={"k": 900}))
    assert cli.main(["--batch", str(path)]) == 2
    err = capsys.readouterr().err
    assert "sae.k: 900 exceeds sae.n_neurons (24)" in err
    assert cli.main(["--batch", str(tmp_path / "missing.yaml")]) == 2


def test_dry_run_prints_every_resolved_run(tmp_path, capsys):
    path = write_config(tmp_path, tiny_config(tmp_path, sweep={"sae.k": [3, 2]}))
    assert cli.main(["--batch", str(path), "--dry-run", "--verbose"]) == 0
    out = capsys.readouterr().out
    docs = [yaml.safe_load(part) for part in out.split("# run ")[1:]]
    assert [d["sae"]["k"] for d in docs] == [3, 2]
    assert cli.main(["--batch", str(path), "--dry-run"]) == 0  # without --verbose: a line per run
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("2 run(s) in 1 bank(s)") and len(lines) == 3
    assert "tiny-k3" in lines[1] and "k=3" in lines[1] and "tiny-k2" in lines[2]
    assert not (tmp_path / "runs").exists()


def test_a_preset_runs_by_name_from_any_directory_and_an_unknown_name_lists_them(tmp_path, monkeypatch, capsys):
    from collapse_tui.config.presets import presets, resolve_config

    monkeypatch.chdir(tmp_path)
    assert resolve_config("quick") == resolve_config("quick.yaml") == presets()["quick"]
    assert cli.main(["--batch", "quick", "--dry-run"]) == 0
    assert "quick-topk-k250" in capsys.readouterr().out
    own = write_config(tmp_path, tiny_config(tmp_path), name="quick.yaml")
    assert resolve_config("quick.yaml") == Path("quick.yaml") and Path("quick.yaml").resolve() == own  # a file wins
    assert cli.main(["--batch", "quik", "--dry-run"]) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert "quik: no such file, nor a preset" in err and "paper_quick" in err


@pytest.mark.parametrize("argv, refusal", [
    (["--batch", "quick", "--table", "runs"], "--batch and --table do not go together"),
    (["--follow", "runs/x", "--resume", "runs/x"], "--resume and --follow do not go together"),
    (["my.yaml", "--batch", "quick"], "--batch and CONFIG"),
    (["--dry-run"], "--dry-run goes with --batch"),
    (["--resume", "runs/x", "--ray"], "--ray goes with --batch"),
    (["--table", "runs", "--verbose"], "--verbose goes with --batch or --resume"),
    (["--batch", "quick", "--format", "csv"], "--format goes with --table"),
    (["--table", "runs", "--all", "--columns", "EV"], "--columns and --all do not go together"),
])
def test_conflicting_modes_are_refused_in_one_line(argv, refusal, capsys):
    assert cli.main(argv) == 2
    (err,) = capsys.readouterr().err.strip().splitlines()
    assert err.startswith("collapse-tui: ") and refusal in err


def test_batch_runs_the_sweep_and_prints_a_table(tmp_path, capsys):
    data = tiny_config(tmp_path, sweep={"sae.method": ["topk", "l1"]}, sae={"epochs": 1})
    path = write_config(tmp_path, data)
    other = tmp_path / "elsewhere"
    assert cli.main(["--batch", str(path), "--runs-dir", str(other)]) == 0
    out = capsys.readouterr().out
    assert "tiny-topk  ✓ dead" in out and "tiny-l1  ✓ dead" in out and "dead % @t: neurons never above t" in out
    assert out.count("VAE  MIG") == 1, "the VAE both runs share has one line"
    runs = store.list_runs(other)
    assert sorted(r.summary["method"] for r in runs) == ["l1", "topk"]
    assert all(r.status == "ok" for r in runs)


def test_a_failed_run_exits_1(tmp_path, capsys):
    # Valid as a config, failing at run time: the official file it names is not there.
    path = write_config(tmp_path, tiny_config(tmp_path, data={"source": "official",
                                                              "path": str(tmp_path / "dsprites.npz")}))
    assert cli.main(["--batch", str(path)]) == 1
    assert "failed" in capsys.readouterr().out


def test_backend_flag_selects_the_backend_before_keras_loads(tmp_path):
    other = "torch" if keras.backend.backend() != "torch" else "tensorflow"
    path = write_config(tmp_path, tiny_config(tmp_path, sae={"epochs": 1}))
    out = run_cli("--batch", str(path), "--backend", other, env={"KERAS_BACKEND": keras.backend.backend()})
    assert out.returncode == 0, out.stderr[-2000:]
    (record,) = store.list_runs(tmp_path / "runs")
    assert record.config["environment"]["backend"] == other


@pytest.mark.parametrize("signals, code", [([signal.SIGINT], 130), ([signal.SIGTERM], 143), ([signal.SIGHUP], 143),
                                           ([signal.SIGINT, signal.SIGINT], 130),
                                           # 143 if the SIGTERM lands while the stop runs, else the Ctrl-C's 130
                                           ([signal.SIGINT, signal.SIGTERM], (130, 143))],
                         ids=["ctrl_c", "sigterm", "sighup", "ctrl_c_twice", "ctrl_c_then_sigterm"])
def test_ctrl_c_or_sigterm_stops_cleanly_and_keeps_what_was_measured(tmp_path, signals, code):
    # A second signal 10 ms after the first lands while the stop saves what was measured: it must not
    # interrupt that (a damaged file, a run left "running").
    data = tiny_config(tmp_path, vae={"epochs": 1000})
    path = write_config(tmp_path, data)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen([sys.executable, "-m", "collapse_tui", "--batch", str(path)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        events_file = None
        while time.time() < deadline:
            found = list((tmp_path / "runs").glob("*/events.jsonl"))
            if found and '"epoch_end"' in found[0].read_text():
                events_file = found[0]
                break
            time.sleep(0.2)
        assert events_file is not None, "the run never reached its first epoch"
        for i, signum in enumerate(signals):
            if i:
                time.sleep(0.01)
            proc.send_signal(signum)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode in (code if isinstance(code, tuple) else (code,)), err[-2000:]
    assert "Traceback" not in err
    summary = json.loads((events_file.parent / "summary.json").read_text())
    assert summary["status"] == "stopped"
    lines = events_file.read_text().splitlines()
    assert json.loads(lines[-1])["type"] == "run_finished"
    assert any(json.loads(line)["type"] == "epoch_end" for line in lines)


def test_native_start_up_lines_are_held_back_unless_loading_fails(tmp_path):
    # Writes straight to file descriptor 2, as TensorFlow's C++ start-up does.
    code = (
        "import os, sys\n"
        "from collapse_tui.engine.environment import quiet_native_logs\n"
        "with quiet_native_logs():\n"
        "    os.write(2, b'chatter\\n')\n"
        "sys.stderr.write('after\\n'); sys.stderr.flush()\n"
        "try:\n"
        "    with quiet_native_logs():\n"
        "        os.write(2, b'why it failed\\n')\n"
        "        raise RuntimeError('load failed')\n"
        "except RuntimeError:\n"
        "    pass\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stderr == "after\nwhy it failed\n"


def test_a_stop_signal_sets_the_stop_event_even_when_its_exception_is_swallowed():
    from collapse_tui import batch

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    stop = threading.Event()
    with batch._stop_on_signals(stop) as terminated:
        try:  # as a garbage-collector callback would: the KeyboardInterrupt is caught and dropped
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        except KeyboardInterrupt:
            pass
        assert stop.is_set() and not terminated.is_set()
        # A second signal while the stop is under way raises nothing (it could only land in a callback
        # or in the report); a SIGTERM still makes it a termination.
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)
        assert terminated.is_set()
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_a_stop_signal_inside_a_polled_block_only_sets_the_stop_event():
    # Training checks the stop event between steps; an exception raised in the middle of a step could
    # land in the framework's own callbacks (wrapped as its error, or native state left half-updated).
    from collapse_tui.interrupts import stop_on_signals, stop_polled

    stop = threading.Event()
    with stop_on_signals(stop) as terminated:
        with stop_polled():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.2)  # a raise would have left the block here
            assert stop.is_set() and terminated.is_set()
        stop.clear()
        with pytest.raises(KeyboardInterrupt):  # outside the block, the signal interrupts again
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)


def test_after_a_stop_the_batch_ignores_further_signals_until_it_exits():
    # The batch's stop propagates out of the handlers' scope before it is reported: a SIGTERM landing
    # there must not meet the default handler (the process would die as killed, -15).
    from collapse_tui import batch

    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        stop = threading.Event()
        with batch._stop_on_signals(stop, ignore_after_stop=True):
            pass
        assert {sig: signal.getsignal(sig) for sig in before} == before  # no stop: restored
        with pytest.raises(KeyboardInterrupt):
            with batch._stop_on_signals(stop, ignore_after_stop=True):
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(1)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN == signal.getsignal(signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)  # ignored: the test goes on
        time.sleep(0.1)
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def test_a_bad_torch_compile_setting_is_refused_before_any_run_starts(tmp_path):
    path = write_config(tmp_path, tiny_config(tmp_path))
    out = run_cli("--batch", str(path), "--backend", "torch", env={"COLLAPSE_TUI_TORCH_COMPILE": "sometimes"})
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip() == "collapse-tui: COLLAPSE_TUI_TORCH_COMPILE must be auto, on or off, got 'sometimes'"
    assert not (tmp_path / "runs").exists()


def test_a_closed_stdout_stops_the_runs_as_ctrl_c_does(tmp_path):
    # `collapse-tui --batch ... | head -1`: once the reader is gone, the run in progress stops and is kept
    # (status stopped, resumable), and the process exits 141 as a command killed by SIGPIPE would.
    path = write_config(tmp_path, tiny_config(tmp_path, vae={"epochs": 1000}))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen([sys.executable, "-m", "collapse_tui", "--batch", str(path)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "collapse-tui" in proc.stdout.readline()
        deadline = time.time() + 240
        events_file = None
        while time.time() < deadline and events_file is None:
            found = list((tmp_path / "runs").glob("*/events.jsonl"))
            if found and '"epoch_end"' in found[0].read_text():
                events_file = found[0]
            time.sleep(0.2)
        assert events_file is not None, "the run never reached its first epoch"
        proc.stdout.close()  # as `head -1` exits: nothing more is read
        err = proc.stderr.read()
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 141, err[-2000:]
    assert "Traceback" not in err and "standard output was closed" in err
    assert json.loads((events_file.parent / "summary.json").read_text())["status"] == "stopped"
    assert json.loads(events_file.read_text().splitlines()[-1])["type"] == "run_finished"


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
@pytest.mark.parametrize("args, shown", [(("--batch", "quick", "--dry-run"), "run(s) in 2 bank(s) -> "),
                                         (("--help",), "(mean +- std")],
                         ids=["dry_run", "help"])
def test_a_terminal_that_cannot_show_unicode_gets_ascii_stand_ins(tmp_path, encoding, args, shown):
    out = subprocess.run([sys.executable, "-m", "collapse_tui", *args], cwd=ROOT, capture_output=True,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONIOENCODING=encoding, COLUMNS="100"),
                         timeout=120)
    assert out.returncode == 0, out.stderr.decode(encoding, "replace")[-2000:]
    text = out.stdout.decode(encoding)  # every byte as the terminal's encoding reads it
    assert shown in text.replace("±", "+-")  # latin-1 has ±; ascii gets a stand-in
    assert b"Traceback" not in out.stderr


@pytest.mark.parametrize("target", ["/etc", "file"])
def test_follow_refuses_what_is_not_a_run_or_sweep_directory(tmp_path, monkeypatch, capsys, target):
    from collapse_tui.tui import app

    calls = []
    monkeypatch.setattr(app, "run_app", lambda **kw: calls.append(kw) or 0)
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True, raising=False)
    if target == "file":
        target = str(write_config(tmp_path, tiny_config(tmp_path)))
    assert cli.main(["--follow", target]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and target in err and "not a run or sweep directory" in err
    assert calls == []
