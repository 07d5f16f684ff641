"""A sweep's run names come from its values; a value no name may hold (a path with a space, a slash)
still makes a valid name, so the sweep expands and validates."""

import re

from hypothesis import given, settings, strategies as st

from collapse_tui.config import expand
from tests.helpers import tiny_config


def test_a_sweep_over_paths_with_a_space_or_a_slash_expands_to_valid_names(tmp_path):
    paths = [str(tmp_path / "my data" / "dsprites.npz"), "shared/dsprites.npz", "plain.npz"]
    data = tiny_config(tmp_path, sweep={"data.path": paths})
    runs = expand(data)
    assert [cfg.data.path for cfg, _ in runs] == paths
    names = [cfg.name for cfg, _ in runs]
    assert all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", n) for n in names), names
    assert names[1] == "tiny-pathshared_dsprites.npz" and names[2] == "tiny-pathplain.npz"
    assert "my_data" in names[0]


@settings(max_examples=30, deadline=None)
@given(st.text(st.characters(blacklist_characters="\x00"), min_size=1, max_size=200))
def test_any_swept_text_makes_a_valid_run_name(tmp_path_factory, value):
    tmp_path = tmp_path_factory.getbasetemp()
    (cfg, overrides), = expand(tiny_config(tmp_path, sweep={"data.path": [value]}))
    assert overrides == {"data.path": value}
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", cfg.name) and len(cfg.name) <= 80
