"""The HParams observer: what a study with a logdir writes, read back from the event files."""

from __future__ import annotations

import logging
import math
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tensorboard.plugins.hparams import api_pb2

import hpo_plugins as hpo
from hpo_plugins import TrialState, hp
from hpo_plugins._artifacts import MARKER
from hpo_plugins.exceptions import ConfigurationError, MissingDependencyError
from hpo_plugins.samplers import RandomSampler
from hpo_plugins.space import SearchSpace
from hpo_plugins.storages import Storage, get_storage
from hpo_plugins.tensorboard import (
    EXPERIMENT_FILE,
    INTERMEDIATE_TAG,
    STATE_CODES,
    STATE_TAG,
    TENSORBOARD_STATUS,
    VALUE_TAG,
    HParamsObserver,
    run_dir,
)
from hpo_plugins.tensorboard._protos import scalar_summary
from hpo_plugins.tensorboard._writer import EventFiles, write_once

Reader = Callable[[str], Any]


def _study(space: Any, logdir: Path, storage: Any = ":memory:", **kwargs: Any) -> hpo.Study:
    return hpo.create_study(space, storage=storage, logdir=str(logdir), study_name="tb",
                            sampler=RandomSampler(), seed=0, **kwargs)


def _run_trial(study: hpo.Study, state: TrialState, curve: list[float]) -> hpo.FrozenTrial:
    trial = study.ask()
    for step, value in enumerate(curve):
        trial.report(value, step)
    if state is TrialState.COMPLETE:
        return study.tell(trial, curve[-1] / 2)
    return study.tell(trial, state=state)


def test_experiment_config_names_every_parameter_and_metric(
        nested_space: dict[str, Any], tmp_path: Path, run_reader: Reader) -> None:
    _study(nested_space, tmp_path)
    root = run_reader(str(tmp_path))
    assert root.files == [EXPERIMENT_FILE]
    (experiment,) = root.experiments
    assert [h.name for h in experiment.hparam_infos] == list(SearchSpace(nested_space).labels)
    assert [m.name.tag for m in experiment.metric_infos] == [VALUE_TAG, INTERMEDIATE_TAG,
                                                              STATE_TAG]
    lr = experiment.hparam_infos[0]
    assert lr.type == api_pb2.DATA_TYPE_FLOAT64
    assert (lr.domain_interval.min_value, lr.domain_interval.max_value) == pytest.approx(
        (1e-4, 1e-1))


def test_a_logdir_whose_experiment_lists_the_columns_in_another_order_is_resumed(
        nested_space: dict[str, Any], tmp_path: Path) -> None:
    """The columns' order does not make another study (TensorBoard lists them by name)."""
    from hpo_plugins.tensorboard import _observer
    from hpo_plugins.tensorboard._protos import experiment_proto, experiment_summary

    url = f"sqlite:///{tmp_path}/order.db"
    study = _study(nested_space, tmp_path / "runs", storage=url)
    attrs = study.storage.get_study(study.study_id).attrs
    experiment = experiment_proto(list(reversed(_observer.HParamsObserver(study).columns)),
                                  _observer._metrics(study, attrs), _observer._description(study),
                                  0.0)
    os.remove(tmp_path / "runs" / EXPERIMENT_FILE)
    write_once(str(tmp_path / "runs" / EXPERIMENT_FILE), experiment_summary(experiment))
    again = hpo.create_study(nested_space, storage=url, study_name="tb", logdir=str(
        tmp_path / "runs"), sampler=RandomSampler(), seed=0)
    assert again.study_id == study.study_id


@pytest.mark.parametrize(("metric", "shown"), [
    (None, "last reported"),  # the default val_loss may not be what the objective reports
    ("val_acc", "last reported (val_acc)"),
])
def test_the_reported_metric_column_names_only_a_metric_a_call_named(
        metric: str | None, shown: str, nested_space: dict[str, Any], tmp_path: Path,
        run_reader: Reader) -> None:
    _study(nested_space, tmp_path, metric=metric)
    (experiment,) = run_reader(str(tmp_path)).experiments
    names = {m.name.tag: m.display_name for m in experiment.metric_infos}
    assert names[INTERMEDIATE_TAG] == shown


@pytest.mark.parametrize("state", [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL])
def test_a_finished_trial_is_one_session_with_its_status_state_and_curve(
        nested_space: dict[str, Any], tmp_path: Path, run_reader: Reader,
        state: TrialState) -> None:
    study = _study(nested_space, tmp_path)
    frozen = _run_trial(study, state, [3.0, 2.0, 1.0])
    run = run_reader(os.path.join(tmp_path, "trial_0000"))
    assert frozen.log_dir == os.path.join(tmp_path, "trial_0000")
    assert len(run.files) == 1 and run.first_events == ["file_version"]
    assert len(run.starts) == 1 and len(run.ends) == 1
    assert run.ends[0].status == api_pb2.Status.Value(TENSORBOARD_STATUS[state])
    assert run.scalars[INTERMEDIATE_TAG] == [(0, 3.0), (1, 2.0), (2, 1.0)]
    assert run.scalars[STATE_TAG] == [(2, float(STATE_CODES[state]))]  # only when it ends
    expected = {TrialState.COMPLETE: [(2, 0.5)], TrialState.PRUNED: [(2, 1.0)],
                TrialState.FAIL: None}[state]
    assert run.scalars.get(VALUE_TAG) == expected


def test_statuses_tell_every_finished_state_apart() -> None:
    statuses = {TENSORBOARD_STATUS[s] for s in (TrialState.COMPLETE, TrialState.PRUNED,
                                                 TrialState.FAIL)}
    assert len(statuses) == 3
    assert sorted(STATE_CODES.values()) == [0, 1, 2, 3]


def test_a_recovered_trial_gets_one_session_end_whoever_wrote_it(
        nested_space: dict[str, Any], tmp_path: Path, run_reader: Reader) -> None:
    """``trial_recovered`` ends a session its dead worker left open, and adds nothing to one
    that worker ended (one end, one ``hpo/state`` point either way)."""
    from hpo_plugins._observers import notify

    study = _study(nested_space, tmp_path, storage=f"sqlite:///{tmp_path}/tb.db")
    open_one, told = study.ask(), study.ask()
    study.tell(told, 1.0)
    # open_one's worker died after the storage recorded its end, before its observers ran
    cut = study.storage.finish_trial(open_one.trial_id, TrialState.PRUNED, 2.0)
    for frozen in (cut, study.trials[told.number]):
        notify(study, "trial_recovered", frozen)
        notify(study, "trial_recovered", frozen)  # a second recovery finds the end too
    for frozen, state in ((cut, TrialState.PRUNED), (study.trials[told.number],
                                                      TrialState.COMPLETE)):
        run = run_reader(frozen.log_dir or "")
        assert [e.status for e in run.ends] == [api_pb2.Status.Value(TENSORBOARD_STATUS[state])]
        assert [v for _, v in run.scalars[STATE_TAG]] == [float(STATE_CODES[state])]


def test_holds_tag_reads_whole_records_and_stops_at_a_cut_one(tmp_path: Path) -> None:
    from tensorboard.plugins.hparams import metadata

    from hpo_plugins.tensorboard._protos import session_end_summary
    from hpo_plugins.tensorboard._writer import holds_tag

    run = str(tmp_path / "run")
    files = EventFiles()
    files.write(run, scalar_summary(INTERMEDIATE_TAG, 1.0), 0)
    assert not holds_tag(run, metadata.SESSION_END_INFO_TAG)
    files.write_all(run, [scalar_summary(STATE_TAG, 1.0), session_end_summary(1, 0.0)], 0)
    assert holds_tag(run, metadata.SESSION_END_INFO_TAG) and holds_tag(run, STATE_TAG)
    (path,) = Path(run).glob("*.hpo")
    data = path.read_bytes()
    path.write_bytes(data[:-3])  # a writer killed in the middle of the last record
    assert holds_tag(run, STATE_TAG) and not holds_tag(run, metadata.SESSION_END_INFO_TAG)
    assert not holds_tag(str(tmp_path / "missing"), STATE_TAG)


def test_an_observer_may_leave_out_an_optional_event_but_not_a_core_one(
        caplog: pytest.LogCaptureFixture) -> None:
    from hpo_plugins._observers import notify

    class StartsOnly:
        def __init__(self) -> None:
            self.started: list[int] = []

        def trial_started(self, study: hpo.Study, trial: hpo.Trial) -> None:
            self.started.append(trial.number)

    study = hpo.create_study({"x": hp.uniform("x", 0, 1)}, storage=":memory:")
    observer = StartsOnly()
    study.observers.append(observer)  # type: ignore[arg-type]
    trial = study.ask()
    with caplog.at_level(logging.WARNING):
        notify(study, "trial_recovered", study.storage.get_trial(trial.trial_id))
    assert observer.started == [0] and not caplog.records  # optional: skipped quietly
    with caplog.at_level(logging.WARNING):
        study.tell(trial, 0.5)  # a misspelt or missing trial_finished is logged, not hidden
    assert observer.started == [0]
    assert [r.levelname for r in caplog.records] == ["ERROR"]
    assert "failed in trial_finished" in caplog.records[0].getMessage()


def test_a_file_where_a_trial_run_goes_is_one_line_not_a_traceback(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The file system's refusal names the path and why: two ERROR tracebacks said no more."""
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "trial_0000").write_text("a stray file")
    study = _study({"x": hp.uniform("x", 0, 1)}, tmp_path / "runs")
    with caplog.at_level(logging.ERROR, logger="hpo_plugins"):
        study.optimize(lambda p: p["x"], n_trials=2)
    records = [r for r in caplog.records if "could not write" in r.getMessage()]
    assert records and all(r.exc_info is None for r in records), caplog.text
    assert "trial_0000" in records[0].getMessage() and "Error" in records[0].getMessage()
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2  # the study went on


def test_a_running_trial_has_a_session_start_and_no_end(
        nested_space: dict[str, Any], tmp_path: Path, run_reader: Reader) -> None:
    study = _study(nested_space, tmp_path)
    trial = study.ask()
    trial.report(0.7, 0)
    run = run_reader(trial.log_dir)
    assert (len(run.starts), run.ends) == (1, [])
    assert STATE_TAG not in run.scalars  # empty while it runs: only the teller writes it
    hparams = run.starts[0].hparams
    assert set(hparams) == {"lr", "net", "mlp_layers", "mlp_dropout", "cnn_filters"}
    inactive = [k for k, v in hparams.items() if math.isnan(v.number_value)]
    assert inactive == [k for k in hparams if k not in trial.flat_params]


def test_string_parameters_show_the_option_or_the_marker(tmp_path: Path,
                                                          run_reader: Reader) -> None:
    space = {"net": hp.choice("net", [{"opt": hp.choice("opt", ["sgd", "adam"])}, "none"])}
    study = _study(space, tmp_path)
    study.enqueue({"net": "none"})
    study.enqueue({"net": {"opt": "adam"}})
    starts = [run_reader(study.ask().log_dir).starts[0].hparams for _ in range(2)]
    assert [s["opt"].string_value for s in starts] == ["<inactive>", "adam"]
    assert [s["net"].number_value for s in starts] == [1.0, 0.0]


def test_a_resumed_study_and_a_second_opener_add_no_experiment_or_session(
        nested_space: dict[str, Any], tmp_path: Path, run_reader: Reader) -> None:
    url = f"sqlite:///{tmp_path}/study.db"
    logdir = tmp_path / "runs"
    _run_trial(_study(nested_space, logdir, url), TrialState.COMPLETE, [1.0])
    resumed = _study(nested_space, logdir, url)
    running = resumed.ask()
    other = hpo.load_study("tb", url)  # like a child process: no space, same logdir
    other.trial(running.trial_id).report(0.5, 0)
    resumed.tell(running, 0.25)
    root = run_reader(str(logdir))
    assert (root.files, len(root.experiments)) == ([EXPERIMENT_FILE], 1)
    runs = [run_reader(str(logdir / f"trial_{n:04d}")) for n in (0, 1)]
    assert [(len(r.starts), len(r.ends)) for r in runs] == [(1, 1), (1, 1)]
    assert len(runs[1].files) == 2  # the second opener wrote its own file
    assert runs[1].scalars[INTERMEDIATE_TAG] == [(0, 0.5)]


def test_a_study_opened_without_its_space_writes_the_same_columns(
        nested_space: dict[str, Any], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/study.db"
    created = _study(nested_space, tmp_path / "runs", url)
    loaded = hpo.load_study("tb", url)
    observers = [o for s in (created, loaded) for o in s.observers]
    assert all(isinstance(o, HParamsObserver) for o in observers) and len(observers) == 2
    first, second = (o.columns for o in observers if isinstance(o, HParamsObserver))
    assert first == second


def test_a_study_without_space_writes_no_experiment(tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="hpo_plugins"):
        _study(None, tmp_path)
    assert not os.path.exists(tmp_path / EXPERIMENT_FILE)
    assert "no recorded search space" in caplog.text


def test_the_logdir_of_another_study_is_refused(nested_space: dict[str, Any],
                                                tmp_path: Path) -> None:
    _run_trial(_study(nested_space, tmp_path), TrialState.COMPLETE, [1.0])
    os.remove(tmp_path / MARKER)  # the trial-folder owner check would refuse first
    with pytest.raises(ConfigurationError, match=r"another study's or another search space's "
                                                 r"\(study 'tb', parameters lr, net, "):
        hpo.create_study(nested_space, storage=":memory:", study_name="other",
                         logdir=str(tmp_path))
    with pytest.raises(ConfigurationError, match="another search space"):
        _study({"x": hp.uniform("x", 0, 1)}, tmp_path)  # same name, another space


def test_the_runs_of_a_deleted_study_of_the_same_name_are_refused(
        nested_space: dict[str, Any], tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/study.db"
    for _ in range(2):
        _run_trial(_study(nested_space, tmp_path / "runs", url), TrialState.COMPLETE, [1.0])
    storage = get_storage(url)
    storage.delete_study(storage.get_study_id("tb"))
    os.remove(tmp_path / "runs" / MARKER)  # the trial-folder owner check would refuse first
    with pytest.raises(ConfigurationError, match=r"runs trial_0000, trial_0001, but the study "
                                                 r"has 0 trial\(s\).*Pass another logdir="):
        _study(nested_space, tmp_path / "runs", url)
    study = _study(nested_space, tmp_path / "fresh", url)  # the fix the message gives
    assert study.logdir == str(tmp_path / "fresh") and not study.trials


def test_runs_beyond_the_trials_of_a_study_with_trials_are_only_logged(
        nested_space: dict[str, Any], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """A storage that lost its last commits (a machine crash) leaves runs of trials it does not
    have: the study must still open."""
    url = f"sqlite:///{tmp_path}/study.db"
    _run_trial(_study(nested_space, tmp_path / "runs", url), TrialState.COMPLETE, [1.0])
    EventFiles().write(str(tmp_path / "runs" / "trial_0001"), scalar_summary("x", 1.0))
    with caplog.at_level(logging.WARNING, logger="hpo_plugins"):
        study = _study(nested_space, tmp_path / "runs", url)
    assert len(study.trials) == 1
    assert "holds runs ['trial_0001'], but study 'tb' has 1 trial(s)" in caplog.text


def test_another_wording_of_the_same_columns_is_the_same_study(
        nested_space: dict[str, Any], tmp_path: Path) -> None:
    """Descriptions and domains may be worded differently by another version: only the study's
    name, direction and column names and types tell studies apart."""
    from hpo_plugins.tensorboard._observer import _same_study

    experiment = HParamsObserver(_study(nested_space, tmp_path))
    ours = _stored(tmp_path)
    reworded = api_pb2.Experiment()
    reworded.CopyFrom(ours)
    reworded.description = ours.description + " (reworded)"
    reworded.hparam_infos[0].description = "another wording"
    assert experiment.columns and _same_study(reworded, ours)
    renamed = api_pb2.Experiment()
    renamed.CopyFrom(ours)
    renamed.description = ours.description.replace("**tb**", "**other**")
    assert not _same_study(renamed, ours)
    flipped = api_pb2.Experiment()
    flipped.CopyFrom(ours)
    flipped.description = ours.description.replace("(minimize)", "(maximize)")
    assert not _same_study(flipped, ours)
    assert not _same_study(api_pb2.Experiment(description="written by someone else"), ours)


def _stored(logdir: Path) -> Any:
    from hpo_plugins.tensorboard._observer import _stored_experiment

    return _stored_experiment(str(logdir))


def test_a_run_written_by_another_study_since_is_reported(
        nested_space: dict[str, Any], tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    study = _study(nested_space, tmp_path)
    EventFiles().write(str(tmp_path / "trial_0000"), scalar_summary("x", 1.0))
    with caplog.at_level(logging.WARNING, logger="hpo_plugins"):
        study.ask()
    assert "already holds TensorBoard events" in caplog.text
    assert "will mix its sessions with this trial's" in caplog.text


def test_a_finite_value_beyond_float32_stays_finite(nested_space: dict[str, Any],
                                                    tmp_path: Path, run_reader: Reader) -> None:
    study = _study(nested_space, tmp_path)
    frozen = _run_trial(study, TrialState.COMPLETE, [-1e300, 1e300])  # value 5e299
    assert frozen.value == 5e299  # the storage keeps it exactly
    run = run_reader(frozen.log_dir)
    biggest = float(np.finfo(np.float32).max)
    assert run.scalars[INTERMEDIATE_TAG] == [(0, -biggest), (1, biggest)]
    assert run.last(VALUE_TAG) == biggest  # not inf, which would read as a diverged trial
    _run_trial(study, TrialState.COMPLETE, [0.5])  # an ordinary value is unchanged
    assert run_reader(study.trials[-1].log_dir or "").last(VALUE_TAG) == 0.25


def test_observer_needs_a_logdir(nested_space: dict[str, Any]) -> None:
    study = hpo.create_study(nested_space, storage=":memory:")
    with pytest.raises(ConfigurationError, match="logdir"):
        HParamsObserver(study)


def test_run_dir_is_the_trial_dir_only_with_a_logdir(nested_space: dict[str, Any],
                                                     tmp_path: Path,
                                                     storage: Storage) -> None:
    with_logdir = hpo.create_study(nested_space, storage=storage, logdir=str(tmp_path / "r"))
    trial = with_logdir.ask()
    assert run_dir(trial) == trial.log_dir == str(tmp_path / "r" / "trial_0000")
    assert run_dir(hpo.create_study(nested_space, storage=":memory:").ask()) is None


@pytest.mark.parametrize("study", [None, "runs/r"])
def test_observer_refuses_what_is_not_a_study(study: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"Expected `study` to be a Study with a "
                                                 r"`logdir`\. Received: study=.*tensorboard "
                                                 r"--logdir PATH"):
        HParamsObserver(study)


@pytest.mark.parametrize("trial", ["x", None, 0])
def test_run_dir_refuses_what_is_not_a_trial(trial: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"Expected `trial` to be a Trial.*Received: "
                                                 r"trial=.*hpo.current_trial\(\)"):
        run_dir(trial)


def test_event_files_are_named_per_process_and_never_shared(tmp_path: Path,
                                                           run_reader: Reader) -> None:

    first, second = EventFiles(), EventFiles()
    for files in (first, second, first):
        files.write(str(tmp_path), scalar_summary("x", 1.0))
    names = sorted(os.listdir(tmp_path))
    pattern = rf"events\.out\.tfevents\.\d{{10}}\.\d{{9}}\..+\.{os.getpid()}\.\d+\.hpo"
    assert len(names) == 2 and all(re.fullmatch(pattern, n) for n in names)
    assert sorted(len(v) for v in [run_reader(str(tmp_path)).scalars["x"]]) == [3]


def test_event_files_sort_in_the_order_they_were_created(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # TensorBoard reads a run's files in name order. Within one second, names that began with
    # whole seconds sorted by pid as text: process 10's file before process 9's.

    created: list[str] = []
    for pid in (9, 10, 99, 100, 999, 1000):  # writers of six processes, one after the other
        with monkeypatch.context() as patch:
            patch.setattr(os, "getpid", lambda pid=pid: pid)
            EventFiles().write(str(tmp_path), scalar_summary("x", 1.0))
        created += sorted(set(os.listdir(tmp_path)) - set(created))
    assert [name.split(".")[-3] for name in created] == ["9", "10", "99", "100", "999", "1000"]
    assert sorted(created) == created


def test_write_once_keeps_the_first_file(tmp_path: Path, run_reader: Reader) -> None:

    path = str(tmp_path / EXPERIMENT_FILE)
    assert write_once(path, scalar_summary("first", 1.0))
    assert not write_once(path, scalar_summary("second", 2.0))
    assert list(run_reader(str(tmp_path)).scalars) == ["first"]
    assert os.listdir(tmp_path) == [EXPERIMENT_FILE]  # no temporary file left behind


def test_missing_tensorboard_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m.startswith("hpo_plugins.tensorboard._")]:
        monkeypatch.delitem(sys.modules, name)
    for name in [m for m in sys.modules if m.split(".")[0] == "tensorboard"]:
        monkeypatch.setitem(sys.modules, name, None)  # as if it were not installed
    import hpo_plugins.tensorboard as tb

    assert tb.run_dir is run_dir  # the helpers import without tensorboard
    with pytest.raises(MissingDependencyError, match=r"pip install 'hpo_plugins\[tensorboard\]'"):
        tb.HParamsObserver  # noqa: B018
