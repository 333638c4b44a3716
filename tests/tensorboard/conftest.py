"""Read back what the HParams observer wrote, with TensorBoard's own TensorFlow-free reader.

(No ``__init__.py`` in this folder: a package named ``tensorboard`` here would shadow the real
one, so the test modules carry a ``tb`` prefix to keep their names unique.)
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import textwrap
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



@dataclass
class Session:
    """One session as TensorBoard's HParams backend lists it: its status and metric values."""

    status: str
    metrics: dict[str, float]


# TensorBoard's own loader and HParams backend: an EventMultiplexer that follows every file of a
# run (as with --reload_multifile true) and the handler behind the dashboard's session list. It
# runs in a child process with TensorBoard's TensorFlow stub (as `hpo-plugins tensorboard` does),
# so that the test process never imports TensorFlow.
_READ_SESSIONS = textwrap.dedent("""
    import json, sys, types
    sys.modules["tensorboard.compat.notf"] = types.ModuleType("tensorboard.compat.notf")
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import api_pb2, backend_context, list_session_groups

    logdir = sys.argv[1]
    multiplexer = plugin_event_multiplexer.EventMultiplexer(
        max_reload_threads=1, event_file_active_filter=lambda _: True)
    multiplexer.AddRunsFromDirectory(logdir)
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, logdir)
    backend = backend_context.Context(base_plugin.TBContext(
        logdir=logdir, data_provider=provider, multiplexer=multiplexer))
    request = api_pb2.ListSessionGroupsRequest(start_index=0, slice_size=1000)
    request.allowed_statuses.extend(api_pb2.Status.values())
    response = list_session_groups.Handler(context.RequestContext(), backend, "", request).run()
    print(json.dumps({s.name: {"status": api_pb2.Status.Name(s.status),
                               "metrics": {m.name.tag: m.value for m in s.metric_values}}
                      for group in response.session_groups for s in group.sessions}))
""")


def read_sessions(logdir: str) -> dict[str, Session]:
    """Every session of ``logdir`` by run name, as the HParams dashboard receives it."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-c", _READ_SESSIONS, logdir], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return {name: Session(s["status"], s["metrics"])
            for name, s in json.loads(result.stdout).items()}


@pytest.fixture
def session_reader() -> Callable[[str], dict[str, Session]]:
    """``session_reader(logdir)`` lists the sessions as TensorBoard's HParams backend does."""
    return read_sessions
