"""Runs as Weights & Biases offline runs: what ``wandb sync <out_dir>/wandb/offline-run-*`` uploads.

Each run becomes one W&B run written by ``wandb.init(mode="offline")``, which never reaches the network:
its config is the run's settings (nested, as config.yaml holds them), its history every series of
:mod:`~collapse_tui.store.run_scalars` with the step its events carry as that series' x axis (W&B's
``define_metric``: ``sae/step/*`` against ``sae/step/step``, ``sae/eval/*`` against ``sae/eval/epoch``),
its summary the final metrics (``final/dead_fraction``…). The runs of a sweep share a W&B group, the
sweep directory's name; each run is tagged with its status.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from collapse_tui.store.run_scalars import ExportSource, RunScalars, unique_names

PROJECT = "collapse-tui"  # the W&B project runs are synced to, unless WANDB_PROJECT names another
# The x axis of each kind of series: training steps, epochs, evaluations (at an SAE epoch).
_AXIS = {"step": "step", "epoch": "epoch", "eval": "epoch"}
# Quiet, local and small: no console capture, no system metrics, no code or git state of the caller.
_SETTINGS = {"silent": True, "console": "off", "disable_git": True, "save_code": False, "disable_code": True,
             "x_disable_stats": True, "_disable_stats": True, "x_disable_machine_info": True,
             "x_disable_meta": True, "_disable_meta": True}


def write_wandb(source: ExportSource, out_dir: str | Path) -> list[Path]:
    """Write each run of ``source`` as an offline W&B run under ``out_dir``; the offline run directories."""
    os.environ.setdefault("WANDB_SILENT", "true")  # the export says what it wrote in one line of its own
    import wandb

    out_dir = Path(out_dir)
    group = source.path.name if source.kind == "sweep" else None
    project = os.environ.get("WANDB_PROJECT") or PROJECT
    written = []
    try:
        for name, run in zip(unique_names(source.runs), source.runs):
            written.append(_write_run(wandb, run, name, out_dir, project, group))
    finally:
        # A finished run's file is still being written by wandb's service: waiting for the service to
        # end is what makes every file whole before the export says it wrote them.
        teardown = getattr(wandb, "teardown", None)
        if teardown is not None:
            teardown()
    return written


def _settings(wandb: Any) -> Any:
    """The settings of :data:`_SETTINGS` this version of wandb knows (their names changed over versions)."""
    known = set(getattr(wandb.Settings, "model_fields", None) or dir(wandb.Settings))
    return wandb.Settings(**{key: value for key, value in _SETTINGS.items() if key in known})


def _write_run(wandb: Any, run: RunScalars, name: str, out_dir: Path, project: str, group: str | None) -> Path:
    """One run as an offline W&B run; its directory."""
    handle = wandb.init(mode="offline", dir=str(out_dir), project=project, name=name, config=run.settings,
                        group=group, tags=[run.status], settings=_settings(wandb))
    try:
        where = Path(handle.dir).parent  # <out_dir>/wandb/offline-run-<when>-<id>, its files/ inside
        for family, tags in _families(run).items():
            axis = f"{family}/{_AXIS[family.split('/')[1]]}"
            handle.define_metric(axis)
            handle.define_metric(f"{family}/*", step_metric=axis)
            steps = sorted({step for tag in tags for step in run.series[tag]})
            for step in steps:
                row = {tag: run.series[tag][step][0] for tag in tags if step in run.series[tag]}
                handle.log({axis: step, **row})
        handle.summary.update(run.final)
    finally:
        handle.finish()
    return where


def _families(run: RunScalars) -> dict[str, list[str]]:
    """The run's series by family (``sae/step``, ``vae/eval``…): the tags that share an x axis."""
    families: dict[str, list[str]] = {}
    for tag in sorted(run.series):
        family = "/".join(tag.split("/", 2)[:2])
        families.setdefault(family, []).append(tag)
    return families
