"""Tiny configs that exercise the whole pipeline in seconds on any backend."""

from __future__ import annotations

import copy
from pathlib import Path

import yaml


def tiny_config(tmp_path: Path, **sections) -> dict:
    data = {
        "name": "tiny",
        "seed": 3,
        "runs_dir": str(tmp_path / "runs"),
        "models_dir": str(tmp_path / "models"),
        "data": {"n_train": 96},
        "vae": {"epochs": 1, "batch_size": 32, "learning_rate": 1e-3},
        "sae": {"n_neurons": 24, "k": 4, "epochs": 2, "batch_size": 32, "learning_rate": 1e-3},
        # A VAE of one epoch gives codes a few SAE steps cannot reconstruct better than their mean: such runs
        # would be flagged "suspect" (and kept out of tables) by the default floor.
        "eval": {"n_samples": 64, "every": 1, "explained_variance_floor": None},
    }
    for key, value in sections.items():
        if isinstance(value, dict):
            data.setdefault(key, {}).update(copy.deepcopy(value))
        else:
            data[key] = value
    return data


def write_config(tmp_path: Path, data: dict, name: str = "tiny.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
