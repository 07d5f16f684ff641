from pathlib import Path

import pytest
import yaml

from collapse_tui import config as cfg
from collapse_tui.config import ConfigError, RunConfig, expand, load, validate

ROOT = Path(__file__).resolve().parents[2]


def errors_of(data):
    with pytest.raises(ConfigError) as info:
        expand(data)
    return info.value.errors


def test_defaults_match_the_paper_choices():
    c = validate({})
    assert c.sae.n_neurons == 500 and c.sae.k == 50 and c.sae.source == "encoder_hidden"
    assert c.eval.n_samples == 10_000 and c.eval.thresholds == [0.0, 1e-6, 1e-3, 1e-2]
    assert c.eval.n_bins == 20 and c.vae.latent_dim == 10 and c.vae.hidden_units == 256


def test_k_above_n_neurons_names_field_and_limit():
    assert errors_of({"sae": {"k": 900}}) == ["sae.k: 900 exceeds sae.n_neurons (500)"]


def test_unknown_key_lists_allowed_keys():
    (err,) = errors_of({"sae": {"kk": 3}})
    assert err.startswith("sae.kk: unknown key; allowed:") and "n_neurons" in err
    (err,) = errors_of({"bogus": 1})
    assert err.startswith("bogus: unknown key") and "sae" in err


def test_out_of_range_and_wrong_choice():
    (err,) = errors_of({"data": {"n_train": 5}})
    assert err.startswith("data.n_train:") and "64" in err
    (err,) = errors_of({"sae": {"method": "l2"}})
    assert err.startswith("sae.method:") and "'topk'" in err and "'l1'" in err
    (err,) = errors_of({"eval": {"thresholds": [0.0, -1.0]}})
    assert err.startswith("eval.thresholds: -1.0 is negative")


def test_schedule_start_must_fit_the_dictionary_for_topk():
    (err,) = errors_of({"sae": {"schedule": {"kind": "linear", "start": 600, "epochs": 5}}})
    assert err.startswith("sae.schedule.start: 600.0") and "500" in err
    ok = validate({"sae": {"method": "l1", "schedule": {"kind": "linear", "start": 600, "epochs": 5}}})
    assert ok.sae.schedule.start == 600


def test_several_errors_are_all_reported():
    errs = errors_of({"sae": {"k": 0, "epochs": -1}, "vae": {"beta": -2}})
    assert {e.split(":")[0] for e in errs} == {"sae.k", "sae.epochs", "vae.beta"}


def test_sweep_expands_grid_and_union():
    runs = expand({"name": "s", "sweep": {"sae.k": [10, 20], "seed": [0, 1]}})
    assert [(c.sae.k, c.seed) for c, _ in runs] == [(10, 0), (10, 1), (20, 0), (20, 1)]
    assert len({c.name for c, _ in runs}) == 4
    runs = expand({"sweep": [{"sae.method": ["topk"], "sae.k": [100, 50]},
                             {"sae.method": ["l1"], "sae.l1_coefficient": [0.1]}]})
    assert [(c.sae.method, c.sparsity) for c, _ in runs] == [("topk", 100), ("topk", 50), ("l1", 0.1)]
    assert runs[2][1] == {"sae.method": "l1", "sae.l1_coefficient": 0.1}


def test_sweep_errors_name_key_and_run():
    (err,) = errors_of({"sweep": {"sae.kx": [1]}})
    assert err.startswith("sweep.sae.kx: unknown key 'kx' in sae")
    (err,) = errors_of({"sweep": {"sae.k": [10, 900]}})
    assert err == "sae.k: 900 exceeds sae.n_neurons (500) (sweep run sae.k=900)"
    (err,) = errors_of({"sweep": {"sae.k": 5}})
    assert err.startswith("sweep.sae.k: must be a non-empty list")
    (err,) = errors_of({"sweep": {"runs_dir": ["a", "b"]}})
    assert "cannot be swept" in err


def test_resolved_yaml_round_trips():
    c = validate({"name": "x", "sae": {"method": "l1", "l1_coefficient": 0.02}})
    again = validate(yaml.safe_load(c.to_yaml()))
    assert again == c
    assert "sae:" in c.to_yaml() and "n_neurons: 500" in c.to_yaml()


def test_load_reports_missing_file_and_syntax(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("sae: [1, 2\n")
    with pytest.raises(ConfigError, match="YAML syntax error"):
        load(bad)
    top = tmp_path / "list.yaml"
    top.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load(top)


def test_shipped_presets_are_valid_and_are_the_package_data_a_wheel_carries():
    from collapse_tui.config.presets import DEFAULT_PRESET, preset_dir, presets

    shipped = presets()
    assert DEFAULT_PRESET in shipped, "the package holds at least the embedded default"
    for path in shipped.values():
        assert load(path), path
    assert preset_dir().parent == ROOT / "collapse_tui"
    assert sorted(p.name for p in (ROOT / "configs").glob("*.yaml")) == sorted(p.name for p in shipped.values())
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert 'collapse_tui = ["presets/*.yaml", "tui/*.tcss"]' in pyproject  # in the wheel (CI installs one)


def test_quick_preset_sweeps_both_methods_down_to_90_percent():
    runs = load(ROOT / "collapse_tui" / "presets" / "quick.yaml")
    topk = [c for c, _ in runs if c.sae.method == "topk"]
    l1 = [c for c, _ in runs if c.sae.method == "l1"]
    assert len(topk) >= 4 and len(l1) >= 4
    assert min(c.sae.k / c.sae.n_neurons for c in topk) <= 0.10


def test_field_docs_describe_every_leaf():
    rows = cfg.field_docs()
    paths = {r[0] for r in rows}
    assert {"sae.k", "sae.schedule.kind", "eval.thresholds", "vae.beta"} <= paths
    assert all(r[3] for r in rows), "every field has a description"


def test_sparsity_property():
    assert RunConfig().sparsity == 50.0
    assert validate({"sae": {"method": "l1", "l1_coefficient": 0.5}}).sparsity == 0.5


def test_remedy_switches_are_exactly_the_remedies_on_off_fields():
    switches = {name for name, f in cfg.RemediesConfig.model_fields.items() if f.annotation is bool}
    assert set(cfg.REMEDY_SWITCHES) == switches == {"auxk", "ghost_grads", "tied_init", "data_init", "project_decoder_grads",
                                                    "geometric_median_init"}


def test_vae_seed_keys_the_vae_as_the_run_seed_would_and_leaves_older_keys_alone():
    from collapse_tui.engine.vae_phase import vae_key

    data = "dsprites-procedural-v2"
    assert vae_key(validate({"seed": 0, "vae": {"seed": 3}}), data) == vae_key(validate({"seed": 3}), data)
    assert vae_key(validate({"seed": 1, "vae": {"seed": 3}}), data) == vae_key(validate({"seed": 0, "vae": {"seed": 3}}), data)
    assert vae_key(validate({"seed": 1}), data) != vae_key(validate({"seed": 0}), data)
    # The key a default config had before vae.seed existed: VAEs already in models/ are still found.
    assert vae_key(validate({}), data) == "4789ad4be04be107"


def test_activations_need_a_file_of_a_known_kind():
    cfg = validate({"data": {"dataset": "activations", "path": "~/acts.npz", "n_train": 1_000_000}})
    assert cfg.data.path.endswith("/acts.npz") and not cfg.data.path.startswith("~")  # rows are counted on opening
    for data, message in (({"dataset": "activations"}, "data.path: data.dataset activations reads its inputs"),
                          ({"dataset": "activations", "path": "acts.txt"}, "acts.txt is not an activations file")):
        with pytest.raises(ConfigError) as err:
            validate({"data": data})
        assert len(err.value.errors) == 1 and message in err.value.errors[0]
    with pytest.raises(ConfigError, match="exceeds the 737280 images of dsprites"):
        validate({"data": {"dataset": "dsprites", "n_train": 1_000_000}})
