"""Fixtures the damaged-store tests share: a small world of finished, stopped and swept runs built once
per module (tests/unit/damaged_store.py), and a fresh copy of it for each example to damage."""

import pytest

from tests.unit.damaged_store import build_world, copy_world, settings_of_world


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    runs_dir = build_world(tmp_path_factory.mktemp("world"))
    return runs_dir, settings_of_world(runs_dir)


@pytest.fixture()
def fresh(world, tmp_path_factory):
    """A fresh copy of the world for each example: (runs dir, sweep dir, the runs' original settings)."""
    template, original = world

    def make():
        return (*copy_world(template, tmp_path_factory.mktemp("copy")), original)

    return make
