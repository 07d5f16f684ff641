"""Runs as TensorBoard reads them: one folder of event files a run, and for a sweep or a runs dir the
HParams summaries that fill TensorBoard's HParams table and parallel-coordinates view.

Written with the ``tensorboard`` package alone (its protos, its record framing and its HParams summary
builders), never TensorFlow: the export runs the same on every Keras backend, or with none. Each folder
gets one event file of a fixed name (:data:`~collapse_tui.store.layout.TENSORBOARD_EVENTS_FILE`), written
whole and renamed into place, so exporting again replaces the last export instead of doubling its points.

    <out_dir>/events.out.tfevents.collapse-tui          the experiment: its hparams and metrics
    <out_dir>/<run>/events.out.tfevents.collapse-tui    the run's series, final metrics, HParams session
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import collapse_tui.store.layout as layout
from collapse_tui.store.files import write_atomic
from collapse_tui.store.run_scalars import ExportSource, RunScalars, final_tags, unique_names, varied_settings

# How a run's status reads in TensorBoard's HParams table: a run stopped before the end of its schedule
# neither failed nor finished it (HParams has no word for that); a run still going has no end yet.
_SESSION_STATUS = {"ok": "STATUS_SUCCESS", "suspect": "STATUS_SUCCESS", "failed": "STATUS_FAILURE",
                   "crashed": "STATUS_FAILURE", "stopped": "STATUS_UNKNOWN"}


def write_tensorboard(source: ExportSource, out_dir: str | Path) -> list[Path]:
    """Write the runs of ``source`` under ``out_dir`` (one folder each, named by its run directory) and,
    for a sweep or a runs dir, the experiment's HParams config at its root; the event files written."""
    out_dir = Path(out_dir)
    names = unique_names(source.runs)
    hparams = varied_settings(source.runs) if source.collection else [None] * len(source.runs)
    written = []
    for name, run, settings in zip(names, source.runs, hparams):
        events = _run_events(run, settings, name)
        path = layout.tensorboard_events(out_dir, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, _event_file(events))
        written.append(path)
    if source.collection:
        path = layout.tensorboard_events(out_dir)
        write_atomic(path, _event_file([_experiment_event(source.runs, hparams)]))
        written.append(path)
    return written


def _event_file(events: list[Any]) -> bytes:
    """An event file's bytes: the file-version event TensorBoard expects first, then ``events``, each in
    TFRecord framing."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer.record_writer import RecordWriter

    buffer = io.BytesIO()
    writer = RecordWriter(buffer)
    first = event_pb2.Event(wall_time=events[0].wall_time if events else time.time(), file_version="brain.Event:2")
    for event in (first, *events):
        writer.write(event.SerializeToString())
    return buffer.getvalue()


def _run_events(run: RunScalars, hparams: dict[str, Any] | None, name: str) -> list[Any]:
    """A run's events: its HParams session start (``hparams`` given: one run of a sweep or runs dir),
    every point of every series at its step, the final metrics, and the session's end."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.plugins.scalar.summary_v2 import scalar_pb

    started = run.started if run.started is not None else time.time()
    ended = run.finished if run.finished is not None else started
    events = []
    if hparams is not None:
        from tensorboard.plugins.hparams import summary_v2

        start = summary_v2.hparams_pb(hparams, trial_id=name, start_time_secs=started)
        events.append(event_pb2.Event(wall_time=started, step=0, summary=start))
    for tag in sorted(run.series):
        for step, (value, when) in sorted(run.series[tag].items()):
            events.append(event_pb2.Event(wall_time=when, step=step, summary=scalar_pb(tag, value)))
    for tag, value in run.final.items():
        events.append(event_pb2.Event(wall_time=ended, step=run.final_step, summary=scalar_pb(tag, value)))
    status = _SESSION_STATUS.get(run.status)
    if hparams is not None and status is not None:
        events.append(event_pb2.Event(wall_time=ended, step=run.final_step, summary=_session_end(status, ended)))
    return events


def _session_end(status: str, ended: float) -> Any:
    """The HParams session's end: how the run ended (``api_pb2`` status name) and when."""
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    info = plugin_data_pb2.SessionEndInfo(status=api_pb2.Status.Value(status), end_time_secs=ended)
    data = plugin_data_pb2.HParamsPluginData(session_end_info=info)
    summary = summary_pb2.Summary()
    summary.value.add(tag=metadata.SESSION_END_INFO_TAG, metadata=metadata.create_summary_metadata(data),
                      tensor=metadata.NULL_TENSOR)
    return summary


def _experiment_event(runs: list[RunScalars], hparams: list[dict[str, Any]]) -> Any:
    """The experiment's HParams config: each varied setting with the values it took, and the final
    metrics as its metrics."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.plugins.hparams import summary_v2

    keys = sorted({key for values in hparams for key in values})
    infos = []
    for key in keys:
        values = sorted({values[key] for values in hparams if key in values})
        infos.append(summary_v2.HParam(key, summary_v2.Discrete(values)))
    metrics = [summary_v2.Metric(tag, display_name=tag.split("/", 1)[-1]) for tag in final_tags(runs)]
    created = min((run.started for run in runs if run.started is not None), default=time.time())
    config = summary_v2.hparams_config_pb(infos, metrics, time_created_secs=created)
    return event_pb2.Event(wall_time=created, step=0, summary=config)
