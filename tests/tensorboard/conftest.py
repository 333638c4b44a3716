"""Read back what the HParams observer wrote, with TensorBoard's own TensorFlow-free reader.

(No ``__init__.py`` in this folder: a package named ``tensorboard`` here would shadow the real
one, so the test modules carry a ``tb`` prefix to keep their names unique.)
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.tensorflow_stub import errors
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import PyRecordReader_New
from tensorboard.plugins.hparams import metadata
from tensorboard.util import tensor_util


def read_events(path: str) -> list[event_pb2.Event]:
    """Every event of one event file, in order."""
    reader = PyRecordReader_New(path.encode())
    events: list[event_pb2.Event] = []
    while True:
        try:
            reader.GetNext()
        except errors.OutOfRangeError:
            return events
        events.append(event_pb2.Event.FromString(reader.record()))


@dataclass
class Run:
    """What one run directory holds, merged over its event files (in file-name order)."""

    files: list[str]
    first_events: list[str] = field(default_factory=list)
    starts: list[Any] = field(default_factory=list)
    ends: list[Any] = field(default_factory=list)
    experiments: list[Any] = field(default_factory=list)
    scalars: dict[str, list[tuple[int, float]]] = field(default_factory=dict)

    def last(self, tag: str) -> float:
        """The last point of a scalar series."""
        return self.scalars[tag][-1][1]


def read_run(run_dir: str) -> Run:
    """Parse every event file in ``run_dir``."""
    files = sorted(glob.glob(os.path.join(run_dir, "*tfevents*")))
    run = Run(files=[os.path.basename(f) for f in files])
    for path in files:
        events = read_events(path)
        run.first_events.append(events[0].WhichOneof("what") or "")
        for event in events:
            for value in event.summary.value:
                _add_value(run, event.step, value)
    return run


def _add_value(run: Run, step: int, value: Any) -> None:
    content = value.metadata.plugin_data.content
    if value.tag == metadata.EXPERIMENT_TAG:
        run.experiments.append(metadata.parse_experiment_plugin_data(content))
    elif value.tag == metadata.SESSION_START_INFO_TAG:
        run.starts.append(metadata.parse_session_start_info_plugin_data(content))
    elif value.tag == metadata.SESSION_END_INFO_TAG:
        run.ends.append(metadata.parse_session_end_info_plugin_data(content))
    else:
        number = float(tensor_util.make_ndarray(value.tensor).item())
        run.scalars.setdefault(value.tag, []).append((step, number))


@pytest.fixture
def run_reader() -> Callable[[str], Run]:
    """``run_reader(run_dir)`` parses a run directory."""
    return read_run
