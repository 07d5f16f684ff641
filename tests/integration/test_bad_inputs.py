"""Careless and unlucky inputs: each is refused with one line (exit status 2 from the command line),
quickly, and writes nothing."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest
import yaml

from collapse_tui import cli
from collapse_tui import config as config_mod
from collapse_tui.config import ConfigError
from tests.helpers import tiny_config, write_config


def refused(tmp_path, capsys, text: str | bytes, *extra: str) -> str:
    """Run ``--batch`` (and ``--dry-run``) on a config file holding ``text``; both must exit 2 with a
    short message and write nothing. Returns the message."""
    path = tmp_path / "bad.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    messages = []
    for dry in ((), ("--dry-run",)):
        t0 = time.perf_counter()
        assert cli.main(["--batch", str(path), "--runs-dir", str(tmp_path / "runs"), *extra, *dry]) == 2
        assert time.perf_counter() - t0 < 10, "refusing must not take long"
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err
        assert len(captured.err) < 2_000, "the message quotes a few hundred characters at most"
        messages.append(captured.err)
    assert not (tmp_path / "runs").exists()
    return messages[0]


def tiny_yaml(tmp_path, **sections) -> str:
    return yaml.safe_dump(tiny_config(tmp_path, **sections), sort_keys=False)


# ----------------------------------------------------------------------------- the file itself

def test_a_binary_file(tmp_path, capsys):
    assert "not a UTF-8 text file" in refused(tmp_path, capsys, b"\x89PNG\r\n\x1a\n\xff\xfe\x00garbage")


def test_a_file_too_large_for_a_config(tmp_path, capsys):
    err = refused(tmp_path, capsys, "# " + "x" * (config_mod.MAX_CONFIG_BYTES + 10) + "\n")
    assert "too large for a config file" in err


def test_a_directory_as_the_config(tmp_path, capsys):
    (tmp_path / "cfgdir").mkdir()
    assert cli.main(["--batch", str(tmp_path / "cfgdir")]) == 2
    assert "a directory" in capsys.readouterr().err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_as_the_config_does_not_hang(tmp_path, capsys):
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    t0 = time.perf_counter()
    assert cli.main(["--batch", str(fifo)]) == 2
    assert time.perf_counter() - t0 < 5
    assert "not a regular file" in capsys.readouterr().err


def test_a_missing_config(tmp_path, capsys):
    assert cli.main(["--batch", str(tmp_path / "nope.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the YAML

def test_yaml_nested_thousands_deep(tmp_path, capsys):
    err = refused(tmp_path, capsys, "sweep: " + "[" * 2000 + "]" * 2000 + "\n")
    assert f"nested more than {config_mod.MAX_DEPTH} levels deep" in err


def test_an_alias_bomb_in_the_thresholds(tmp_path, capsys):
    # 385 bytes that expand to 9^9 values: refused while composing, before anything is built from it.
    lines = ["a: &a [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]"]
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    text = "x-bomb:\n" + "\n".join("  " + line for line in lines) + "\neval:\n  thresholds: *i\n"
    assert "expands to more than" in refused(tmp_path, capsys, text)


def test_a_recursive_anchor(tmp_path, capsys):
    assert "recursive anchor" in refused(tmp_path, capsys, "sweep: &a [*a]\n")


def test_a_yaml_syntax_error_names_the_line(tmp_path, capsys):
    assert "YAML syntax error (line 2" in refused(tmp_path, capsys, "name: x\nsae: {k: [1, 2}\n")


def test_a_python_object_tag_is_not_executed(tmp_path, capsys):
    err = refused(tmp_path, capsys, "name: !!python/object/apply:os.system ['touch pwned']\n")
    assert "YAML syntax error" in err
    assert not Path("pwned").exists()


def test_a_top_level_list(tmp_path, capsys):
    assert "top level must be a mapping" in refused(tmp_path, capsys, "- 1\n- 2\n")


def test_parse_yaml_accepts_a_normal_config_with_anchors():
    data = config_mod.parse_yaml("base: &b {k: 3}\nsae: *b\nlist: &l [1, 2]\nother: *l\n")
    assert data["sae"] == {"k": 3} and data["other"] == [1, 2]


# ----------------------------------------------------------------------------- the values

@pytest.mark.parametrize("section, value", [
    ({"eval": {"thresholds": [float("nan")]}}, "eval.thresholds.0"),
    ({"eval": {"thresholds": [0.0, float("inf")]}}, "eval.thresholds.1"),
    ({"sae": {"schedule": {"kind": "linear", "start": float("inf"), "epochs": 2}}}, "sae.schedule.start"),
    ({"sae": {"learning_rate": float("nan")}}, "sae.learning_rate"),
    ({"vae": {"beta": float("-inf")}}, "vae.beta"),
    ({"eval": {"revival_frequency": float("nan")}}, "eval.revival_frequency"),
])
def test_non_finite_numbers_are_refused(tmp_path, capsys, section, value):
    err = refused(tmp_path, capsys, tiny_yaml(tmp_path, **section))
    assert value in err and "finite" in err


def test_an_empty_sweep_list(tmp_path, capsys):
    assert "sweep: is an empty list" in refused(tmp_path, capsys, tiny_yaml(tmp_path, sweep=[]))


def test_a_sweep_with_an_empty_block_or_values(tmp_path, capsys):
    assert "non-empty mapping" in refused(tmp_path, capsys, tiny_yaml(tmp_path, sweep=[{}]))
    assert "non-empty list of values" in refused(tmp_path, capsys, tiny_yaml(tmp_path, sweep={"sae.k": []}))


def test_a_grid_too_large_to_expand(tmp_path, capsys):
    sweep = {"seed": list(range(1000)), "sae.k": list(range(1, 201))}
    err = refused(tmp_path, capsys, tiny_yaml(tmp_path, sweep=sweep))
    assert "200,000 runs" in err


def test_a_large_grid_asks_for_yes(tmp_path, capsys):
    path = write_config(tmp_path, tiny_config(tmp_path, sweep={"seed": list(range(1001))}))
    assert cli.main(["--batch", str(path)]) == 2
    err = capsys.readouterr().err
    assert "1,001 runs" in err and "--yes" in err
    assert not (tmp_path / "runs").exists()
    assert cli.main(["--batch", str(path), "--dry-run"]) == 0  # a dry run only prints


def test_a_long_bad_value_is_quoted_short(tmp_path, capsys):
    err = refused(tmp_path, capsys, tiny_yaml(tmp_path, name="x" * 100_000))
    assert "more characters" in err


def test_a_wrong_type_names_the_field(tmp_path, capsys):
    assert "seed" in refused(tmp_path, capsys, tiny_yaml(tmp_path, seed="xyz"))


def test_error_quotes_are_shortened():
    assert config_mod.shorten("abc") == "abc"
    long = config_mod.shorten("y" * 1000, limit=50)
    assert long.startswith("y" * 50) and "950 more characters" in long


# ----------------------------------------------------------------------------- where runs go

def test_an_empty_runs_dir_argument(tmp_path, capsys):
    path = write_config(tmp_path, tiny_config(tmp_path))
    with pytest.raises(SystemExit) as info:
        cli.main(["--batch", str(path), "--runs-dir", ""])
    assert info.value.code == 2 and "must not be empty" in capsys.readouterr().err


def test_a_runs_dir_that_is_a_file(tmp_path, capsys):
    (tmp_path / "runs").write_text("a file")
    path = write_config(tmp_path, tiny_config(tmp_path))
    assert cli.main(["--batch", str(path)]) == 2
    err = capsys.readouterr().err
    assert "cannot write runs" in err and "is not a directory" in err and "Traceback" not in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_a_read_only_runs_dir(tmp_path, capsys):
    runs = tmp_path / "runs"
    runs.mkdir()
    runs.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        path = write_config(tmp_path, tiny_config(tmp_path))
        assert cli.main(["--batch", str(path)]) == 2
        assert "is not writable" in capsys.readouterr().err
    finally:
        runs.chmod(stat.S_IRWXU)


def test_a_models_dir_that_is_a_file(tmp_path, capsys):
    (tmp_path / "models").write_text("a file")
    path = write_config(tmp_path, tiny_config(tmp_path))
    assert cli.main(["--batch", str(path)]) == 2
    assert "models" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_home_is_expanded_in_directories(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    cfg = config_mod.validate({"runs_dir": "~/r", "models_dir": "~/m", "data": {"path": "~/d"}})
    assert cfg.runs_dir == str(tmp_path / "r") and cfg.models_dir == str(tmp_path / "m")
    assert cfg.data.path == str(tmp_path / "d")
    assert cli.build_parser().parse_args(["--runs-dir", "~/x"]).runs_dir == str(tmp_path / "x")


def test_config_error_is_a_value_error_with_lines():
    with pytest.raises(ConfigError) as info:
        config_mod.expand({"sae": {"k": "many"}})
    assert info.value.errors and all("\n" not in line for line in info.value.errors)


# ----------------------------------------------------------------------------- damaged run directories

def good_run(runs_dir: Path, name: str, seed: int = 0, dead: float = 0.3) -> Path:
    """A finished run's directory as the engine writes it (config, events, summary), by hand."""
    from collapse_tui import store
    from collapse_tui.events import RunFinished, RunStarted

    run = runs_dir / f"20261201-120000-{name}"
    run.mkdir(parents=True)
    config = config_mod.validate({"name": name, "seed": seed}).to_dict()
    (run / store.CONFIG_FILE).write_text(yaml.safe_dump({**config, "environment": {"backend": "x"}}))
    summary = {"status": "ok", "run_id": run.name, "name": name, "dataset": "dsprites", "method": "topk",
               "sparsity": 50.0, "n_neurons": 500, "source": "encoder_hidden", "remedies": [], "started": 1.0,
               "finished": 2.0, "seconds": 1.0, "final": {"dead_fraction": dead, "dead@0": dead, "l0": 49.5,
                                                          "explained_variance": 0.99}}
    (run / store.SUMMARY_FILE).write_text(store.dumps(summary))
    lines = [store.dumps(RunStarted(name=name, run_dir=str(run), config=config, environment={}).to_dict()),
             store.dumps(RunFinished(status="ok", summary=summary).to_dict())]
    (run / store.EVENTS_FILE).write_text("\n".join(lines) + "\n")
    return run


@pytest.mark.parametrize("damage, reason", [
    (lambda run: _edit_summary(run, sparsity="abc"), "sparsity is str"),
    (lambda run: _edit_summary(run, final=[1, 2]), "final is list"),
    (lambda run: _edit_summary(run, status=None), "no status"),
    (lambda run: _edit_summary(run, n_neurons=True), "n_neurons is bool"),
    (lambda run: _edit_config(run, seed="xyz"), "config.yaml: seed"),
    (lambda run: _edit_config(run, sae={"k": "many"}), "config.yaml: sae.k"),
    (lambda run: (run / "summary.json").write_text("[1, 2]"), "summary.json: holds list [1, 2], not a mapping"),
    (lambda run: (run / "summary.json").write_bytes(b"\xff\xfe"), "summary.json: unreadable"),
    (lambda run: (run / "config.yaml").write_text("seed: [unclosed"), "config.yaml: unreadable"),
])
def test_a_damaged_run_is_shown_unreadable_and_the_rest_works(tmp_path, capsys, damage, reason):
    from collapse_tui import store

    runs = tmp_path / "runs"
    good_run(runs, "a", seed=0), good_run(runs, "b", seed=1)
    damage(good_run(runs, "c", seed=2))
    records = store.list_runs(runs, include_unreadable=True)
    (bad,) = [r for r in records if r.error]
    assert bad.status == "unreadable" and reason in bad.error
    assert cli.main(["--table", str(runs), "--format", "md"]) == 0  # the table of the two readable runs
    out = capsys.readouterr().out
    assert "| dsprites | topk | none | k=50 |" in out and "| 2 |" in out
    assert len(cli.compared_runs([str(r.path) for r in records])) == 2


def _edit_summary(run: Path, **changes):
    data = __import__("json").loads((run / "summary.json").read_text())
    data.update(changes)
    (run / "summary.json").write_text(__import__("json").dumps(data))


def _edit_config(run: Path, **changes):
    data = yaml.safe_load((run / "config.yaml").read_text())
    for key, value in changes.items():
        data[key] = {**data[key], **value} if isinstance(value, dict) else value
    (run / "config.yaml").write_text(yaml.safe_dump(data))


def test_a_config_key_from_another_version_is_not_damage(tmp_path):
    from collapse_tui import store

    run = good_run(tmp_path / "runs", "a")
    _edit_config(run, future_setting=3, sae={"future_field": "x"})
    assert store.load_run(run).error is None


@pytest.mark.parametrize("line", ["[1,2]", '{"type": "epoch_end"}', '{"type": 7}', "not json", '"text"',
                                  '{"type": "nonsense", "x": 1}'])
def test_a_damaged_events_line_becomes_a_warning_in_its_place(tmp_path, line):
    from collapse_tui import store
    from collapse_tui.events import Message, RunFinished, RunStarted

    run = good_run(tmp_path / "runs", "a")
    started, finished = (run / "events.jsonl").read_text().splitlines()
    (run / "events.jsonl").write_text("\n".join([started, line, finished]) + "\n")
    events, offset = store.read_events(run)
    assert [type(e) for e in events] == [RunStarted, Message, RunFinished]
    assert events[1].level == "warning" and f"at byte {len(started) + 1}" in events[1].text
    assert offset == (run / "events.jsonl").stat().st_size


def test_the_tui_state_follows_a_run_with_a_damaged_line(tmp_path):
    from collapse_tui.tui.feeds import FileFeed

    run = good_run(tmp_path / "runs", "a")
    started, finished = (run / "events.jsonl").read_text().splitlines()
    (run / "events.jsonl").write_text("\n".join([started, '{"type": "epoch_end"}', finished]) + "\n")
    feed = FileFeed(run)
    assert feed.poll() and feed.error is None
    state = feed.current
    assert state.status == "ok" and any("unreadable line" in m for m in state.messages)


# ----------------------------------------------------------------------------- training that diverges

def test_a_run_that_reconstructs_nothing_is_suspect_and_stays_out_of_the_table(tmp_path, capsys):
    # An SAE learning rate of 1.0 "trains" to an explained variance far below 0 with every loss finite.
    from collapse_tui import store

    path = write_config(tmp_path, tiny_config(tmp_path, sae={"learning_rate": 1.0},
                                              eval={"explained_variance_floor": 0.0}))
    assert cli.main(["--batch", str(path)]) == 0
    out = capsys.readouterr().out
    assert "suspect: explained variance" in out and "no better than the inputs' mean" in out
    (run,) = store.list_runs(tmp_path / "runs")
    assert run.summary["status"] == "ok" and run.status == "suspect"
    assert run.flags and run.flags[0].startswith("explained variance -")
    assert (run.path / "sae.keras").is_file()  # kept, for a look
    assert cli.main(["--table", str(tmp_path / "runs"), "--format", "md"]) == 0
    table = capsys.readouterr().out
    assert "| dsprites |" not in table and "(suspect; explained variance" in table


def test_a_vae_that_diverges_fails_the_run_and_is_never_cached(tmp_path):
    from collapse_tui.engine.runner import run

    cfg = config_mod.validate(tiny_config(tmp_path, vae={"learning_rate": 1.0}))
    result = run(cfg)
    # Its loss turns NaN (or, under JAX, its weights do while the logged loss is still finite).
    reason = result.summary["reason"]
    assert result.status == "failed" and "training diverged: the VAE's" in reason
    assert "loss became nan" in reason or "weights are not finite" in reason
    assert not list((tmp_path / "models").glob("vae-*.keras"))
    assert not list((tmp_path / "models").glob(".vae-*"))


def test_a_cached_vae_with_non_finite_weights_is_retrained(tmp_path):
    import keras
    import numpy as np

    from collapse_tui.engine.runner import run

    cfg = config_mod.validate(tiny_config(tmp_path, sae={"epochs": 1}))
    assert run(cfg).status == "ok"
    (cached,) = (tmp_path / "models").glob("vae-*.keras")
    vae = keras.saving.load_model(cached, compile=False)
    vae.set_weights([np.full_like(w, np.nan) for w in vae.get_weights()])
    vae.save(cached)
    again = run(cfg)
    assert again.status == "ok"
    events = (again.run_dir / "events.jsonl").read_text()
    assert "weights are not finite" in events and "training a new one" in events
    fresh = keras.saving.load_model(cached, compile=False)
    assert all(np.isfinite(w).all() for w in fresh.get_weights())


def test_a_member_whose_loss_turns_nan_fails_within_the_epoch(tmp_path, monkeypatch):
    import keras
    import numpy as np

    from collapse_tui.config import expand
    from collapse_tui.engine import bank_phase, sae_phase
    from collapse_tui.engine.sweep import run_sweep

    prepare = sae_phase.SAEPhase.prepare

    def poisoned(self):
        prepare(self)
        if self.cfg.sae.k == 8:
            w = keras.ops.convert_to_numpy(self.sae.W_enc).copy()
            w[:] = np.nan
            self.sae.W_enc.assign(w)

    init = bank_phase._MemberEvents.__init__

    def checked_every_step(self, phase):
        init(self, phase)
        self.interval = 0.0

    monkeypatch.setattr(sae_phase.SAEPhase, "prepare", poisoned)
    monkeypatch.setattr(bank_phase._MemberEvents, "__init__", checked_every_step)
    # Batches of one: 96 steps an epoch, several calls of TensorFlow's training function (32 steps each).
    results = run_sweep(expand(tiny_config(tmp_path, sweep={"sae.k": [4, 8]}, sae={"epochs": 2, "batch_size": 1})))
    status = {r.summary["name"]: (r.status, r.summary.get("reason")) for r in results}
    assert status["tiny-k4"] == ("ok", None)
    assert status["tiny-k8"][0] == "failed"
    assert "loss became nan in epoch 1 (found at step " in status["tiny-k8"][1]  # within the epoch


def test_result_flags():
    from collapse_tui.engine.sae_phase import result_flags

    assert result_flags({"explained_variance": 0.93}) == [] and result_flags({}) == []
    assert "no better than the inputs' mean" in result_flags({"explained_variance": 0.0})[0]
    assert "-3.2e+06 ≤ 0" in result_flags({"explained_variance": -3.2e6})[0]
    assert result_flags({"explained_variance": 0.5}, floor=0.9) == ["explained variance 0.5 ≤ 0.9"]
    assert result_flags({"explained_variance": -5.0}, floor=None) == []
    assert result_flags({"explained_variance": float("nan")}, floor=None) == ["explained variance nan"]


# ----------------------------------------------------------------------------- runs whose process died

def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_running_run_whose_process_is_gone_is_crashed(tmp_path):
    import socket

    from collapse_tui import store

    events = tmp_path / "events.jsonl"
    events.write_text("")
    me = store.process_identity()
    here = {"status": "running", "host": socket.gethostname()}
    assert not store.process_gone({**here, **me}, events)
    assert store.process_gone({**here, "pid": _dead_pid()}, events)
    if me["pid_started"] is not None:  # a PID now used by another process (here: ours, started earlier)
        assert store.process_gone({**here, "pid": me["pid"], "pid_started": me["pid_started"] - 1}, events)
    # Another host: the heartbeat decides.
    elsewhere = {"status": "running", "host": "another-host", "pid": me["pid"]}
    assert not store.process_gone(elsewhere, events)
    old = time.time() - store.STALE_SECONDS - 5
    os.utime(events, (old, old))
    assert store.process_gone(elsewhere, events)


def test_the_heartbeat_keeps_an_open_run_fresh(tmp_path):
    from collapse_tui import store

    writer = store.RunWriter(tmp_path)
    old = time.time() - 1000
    os.utime(tmp_path / "events.jsonl", (old, old))
    writer.beat()
    assert time.time() - (tmp_path / "events.jsonl").stat().st_mtime < 60
    writer.close()
    os.utime(tmp_path / "events.jsonl", (old, old))
    writer.beat()  # closed: no longer alive
    assert (tmp_path / "events.jsonl").stat().st_mtime == pytest.approx(old)


def test_a_killed_batch_leaves_crashed_runs_that_every_reader_shows(tmp_path, capsys):
    import signal
    import subprocess
    import sys

    from collapse_tui import store
    from collapse_tui.tui.feeds import FileFeed

    path = write_config(tmp_path, tiny_config(tmp_path, sae={"epochs": 1000}))
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "collapse_tui", "--batch", str(path)], cwd=root,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            found = list((tmp_path / "runs").glob("*/events.jsonl"))
            if found and '"phase":"sae","epoch"' in found[0].read_text().replace(" ", ""):
                break
            time.sleep(0.2)
        else:
            pytest.fail("the run never reached the SAE's epochs")
        (run,) = store.list_runs(tmp_path / "runs")
        assert run.status == "running"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    (run,) = store.list_runs(tmp_path / "runs")
    assert run.summary["status"] == "running" and run.status == "crashed"
    assert cli.main(["--table", str(tmp_path / "runs"), "--format", "md"]) == 0
    assert "(crashed)" in capsys.readouterr().out
    feed = FileFeed(run.path)
    feed.poll()
    assert feed.running
    feed._checked -= FileFeed.LIVENESS_SECONDS
    assert feed.poll() and not feed.running and feed.current.status == "crashed"


def test_an_interruption_during_a_save_waits_for_the_save():
    from collapse_tui import interrupts

    assert not interrupts.defer_interrupt(KeyboardInterrupt())  # nothing being saved: raise at once
    done = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts.uninterrupted():
            with interrupts.uninterrupted():
                assert interrupts.defer_interrupt(KeyboardInterrupt("first"))
                assert interrupts.defer_interrupt(KeyboardInterrupt("second"))
                done.append("inner")
            done.append("outer")  # the inner block's end does not raise: the outer one is still saving
    assert done == ["inner", "outer"]
    assert not interrupts.defer_interrupt(KeyboardInterrupt())


def test_a_model_is_saved_atomically(tmp_path):
    import keras

    from collapse_tui import store
    from collapse_tui.nn import SparseAutoencoder

    sae = SparseAutoencoder(8, 6, "topk", k=2, seed=0)
    sae(keras.ops.zeros((1, 8)))
    target = tmp_path / "sae.keras"
    target.write_text("the previous file")
    store.save_model(sae, target)
    assert keras.saving.load_model(target, compile=False).n_neurons == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sae.keras"]  # no temporary left


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_a_fifo_as_the_data_path_is_refused(tmp_path, capsys):
    from collapse_tui.data import DatasetFileError
    from collapse_tui.data.files import open_official

    fifo = tmp_path / "dsprites.npz"
    os.mkfifo(fifo)
    err = refused(tmp_path, capsys, tiny_yaml(tmp_path, data={"source": "official", "path": str(fifo)}))
    assert "data.path" in err and "neither a file nor a directory" in err
    t0 = time.perf_counter()
    with pytest.raises(DatasetFileError, match="not a regular file"):
        open_official("dsprites", fifo)  # the reader refuses it too, without waiting on it
    assert time.perf_counter() - t0 < 5


def test_temporaries_left_by_a_crash_are_removed(tmp_path):
    from collapse_tui import store

    dead = tmp_path / f".vae-abc.{_dead_pid()}.tmp.keras"
    mine = tmp_path / f".vae-abc.{os.getpid()}.tmp.keras"
    other = tmp_path / ".summary.json.x1y2"
    for p in (dead, mine, other):
        p.write_text("half")
    (tmp_path / "vae-abc.keras").write_text("whole")
    assert store.remove_stale_temporaries(tmp_path) == [dead]
    assert sorted(store.remove_stale_temporaries(tmp_path, everything=True)) == sorted([mine, other])
    assert [p.name for p in tmp_path.iterdir()] == ["vae-abc.keras"]


def test_a_full_disk_ends_the_batch_with_one_line(tmp_path, capsys, monkeypatch):
    # From the SAE's first epoch on, nothing can be written (events, summary): the batch says so in a line.
    import errno

    from collapse_tui import store
    from collapse_tui.events import EpochEnd

    write, full = store.RunWriter.__call__, []

    def filling(self, event):
        if full or (isinstance(event, EpochEnd) and event.phase == "sae"):
            full.append(event)
            raise OSError(errno.ENOSPC, "No space left on device", str(self.run_dir / "events.jsonl"))
        write(self, event)

    monkeypatch.setattr(store.RunWriter, "__call__", filling)
    path = write_config(tmp_path, tiny_config(tmp_path))
    assert cli.main(["--batch", str(path)]) == 1
    err = capsys.readouterr().err
    assert "cannot go on: No space left on device" in err and "Traceback" not in err
    (run,) = store.list_runs(tmp_path / "runs")
    assert run.summary["status"] == "running"  # as the disk left it: crashed once this process is gone
