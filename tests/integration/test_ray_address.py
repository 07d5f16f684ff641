"""A Ray address nothing answers at is refused in seconds, in one line naming it, before the sweep's
directory is made (Ray's own connect would retry for many minutes). No Ray cluster is started here."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from collapse_tui.engine import ray_sweep
from collapse_tui.engine.ray_sweep import RayOptions, run_sweep_on_ray
from collapse_tui.config import expand
from tests.helpers import tiny_config, write_config

ROOT = Path(__file__).resolve().parents[2]
pytest.importorskip("ray")


def closed_port() -> int:
    """A local port nothing listens on (bound for a moment to find a free one, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("form", ["{}", "ray://{}"])
def test_an_address_nothing_answers_at_is_a_problem_of_the_options(form):
    address = form.format(f"127.0.0.1:{closed_port()}")
    started = time.monotonic()
    (problem,) = RayOptions(address=address).problems()
    assert time.monotonic() - started < ray_sweep.PROBE_SECONDS + 1
    assert address in problem and "refused" in problem


def test_addresses_ray_resolves_itself_are_not_probed():
    assert RayOptions(address=None).problems() == []
    assert ray_sweep.address_problem("auto") is None


def test_batch_on_an_unreachable_address_is_refused_in_seconds_leaving_nothing(tmp_path):
    address = f"127.0.0.1:{closed_port()}"
    path = write_config(tmp_path, tiny_config(tmp_path, sweep={"sae.k": [2, 4]}))
    out = subprocess.run([sys.executable, "-m", "collapse_tui", "--batch", str(path), "--ray", address], cwd=ROOT,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"), capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("collapse-tui: cannot run on Ray:") and address in line
    assert not (tmp_path / "runs").exists()


def test_a_sweep_whose_ray_does_not_start_leaves_no_sweep_directory(tmp_path, monkeypatch):
    def refuse(options):
        raise ConnectionError("no Ray cluster there")

    monkeypatch.setattr(ray_sweep, "_start_ray", refuse)
    runs = expand(tiny_config(tmp_path, sweep={"sae.k": [2, 4]}))
    with pytest.raises(ConnectionError):
        run_sweep_on_ray(runs, RayOptions(address="auto"))
    assert not (tmp_path / "runs").exists()
