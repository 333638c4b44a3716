"""The study observer that writes TensorBoard's HParams data while trials run."""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from tensorboard.plugins.hparams import api_pb2, metadata

from hpo_plugins._frozen import FrozenTrial
from hpo_plugins._require import require_study
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.tensorboard._columns import Column, columns_from_description
from hpo_plugins.tensorboard._mapping import (
    INTERMEDIATE_TAG,
    STATE_CODES,
    STATE_TAG,
    TENSORBOARD_STATUS,
    VALUE_TAG,
)
from hpo_plugins.tensorboard._protos import (
    MetricSpec,
    experiment_proto,
    experiment_summary,
    scalar_summary,
    session_end_summary,
    session_start_summary,
)
from hpo_plugins.tensorboard._writer import (
    EXPERIMENT_FILE,
    EventFiles,
    holds_tag,
    read_summary_values,
    write_once,
)

if TYPE_CHECKING:
    from hpo_plugins.study import Study
    from hpo_plugins.trial import Trial

__all__ = ["HParamsObserver"]

_logger = logging.getLogger(__name__)

_TRIAL_RUN = re.compile(r"^trial_(\d+)$")
#: The study's name and direction in the experiment description (see ``_description``).
_DESCRIBED = re.compile(r"^hpo_plugins study \*\*(.*)\*\* \((\w+)\)\.")


class HParamsObserver:
    """Writes a study's trials to TensorBoard's HParams dashboard as they happen.

    A study with a ``logdir`` makes one in every process that opens it. The experiment config
    (every parameter column and every metric) is written once per study in the logdir root;
    each trial is a run in its own directory, ``trial.log_dir``:

    * ``trial_started`` (the process that asked): the session start with the parameter values;
    * ``value_reported`` (the process that runs the trial): ``hpo/intermediate`` at the step;
    * ``trial_finished`` (the process that told): ``hpo/value``, ``hpo/state`` and the session
      end with its status (see :data:`~hpo_plugins.tensorboard.TENSORBOARD_STATUS`);
    * ``trial_recovered`` (the launcher, when a worker died after the storage recorded its
      trial's end but perhaps before writing that end here): the same, if the run holds no
      session end yet.

    Every process appends to its own event file, so parallel workers never share a file.
    ``hpo/value`` and ``hpo/state`` are written by one process only, the one that ends the
    trial: TensorBoard reads a run's files in name order and keeps the last point of a tag it
    reads, so a ``hpo/state`` of 0 written at the start by the asker could hide the final one
    when another process ends the trial. A running trial therefore has no ``hpo/state`` (an
    empty cell) until it ends.

    Args:
        study: A study with a ``logdir``.

    A logdir belongs to one study: TensorBoard would show two studies' trials of one number as
    one row, with one study's parameters and the other's values. So the observer refuses a
    logdir whose experiment config is another study's (another name, direction or parameter
    columns), or that holds trial runs while the study has no trial yet (a deleted study of
    the same name); runs beyond the trials of a study that has some (a storage that lost its
    last commits) are only logged.

    Raises:
        ConfigurationError: ``study`` is not a Study, or has no ``logdir``, or its logdir holds
            another study's TensorBoard data.

    Example:
        >>> import os, hpo_plugins as hpo
        >>> study = hpo.create_study(space={"x": hpo.hp.uniform("x", 0, 1)}, storage=":memory:",
        ...                          logdir="runs/example")  # adds an HParamsObserver
        >>> trial = study.ask()
        >>> trial.report(0.5, step=0)
        >>> _ = study.tell(trial, 0.25)
        >>> sorted(os.listdir("runs/example"))  # the marker: see hpo_plugins._artifacts
        ['.hpo_plugins_study.json', 'events.out.tfevents.hpo-experiment', 'trial_0000']
    """

    def __init__(self, study: Study) -> None:
        _check_study(study)
        if study.logdir is None:
            raise ConfigurationError(
                f"Expected a study with a `logdir` for TensorBoard. Received: study "
                f"{study.study_name!r} with logdir=None; pass logdir= to create_study."
            )
        self.logdir = os.path.abspath(study.logdir)
        attrs = study.storage.get_study(study.study_id).attrs  # read once for all three
        self.columns: list[Column] = columns_from_description(_space_description(study, attrs),
                                                              _space_constants(study, attrs))
        self._files = EventFiles()
        experiment = experiment_proto(self.columns, _metrics(study, attrs), _description(study),
                                      0.0)
        _check_owner(study, self.logdir, experiment if self.columns else None)
        self._write_experiment(study, experiment)

    def __repr__(self) -> str:
        return f"HParamsObserver(logdir={self.logdir!r})"

    # -- the observer protocol ----------------------------------------------------------------

    def trial_started(self, study: Study, trial: Trial) -> None:
        """Start the trial's session (TensorBoard lists it at once).

        No ``hpo/state`` yet: only the process that ends the trial writes it (see the class).
        """
        run = trial.log_dir
        _warn_if_reused(run)
        values = {c.label: c.value(trial.flat_params) for c in self.columns}
        self._files.write(run, session_start_summary(values, time.time(), model_uri=run))

    def value_reported(self, study: Study, trial: Trial, step: int, value: float) -> None:
        """Add a point to the trial's ``hpo/intermediate`` curve."""
        self._files.write(trial.log_dir, scalar_summary(INTERMEDIATE_TAG, value), step)

    def trial_finished(self, study: Study, frozen: FrozenTrial) -> None:
        """End the trial's session with its value, state and status."""
        run = self._run_dir(frozen)
        status = api_pb2.Status.Value(TENSORBOARD_STATUS[frozen.state])
        end = frozen.datetime_complete.timestamp() if frozen.datetime_complete else time.time()
        summaries = [scalar_summary(VALUE_TAG, frozen.value)] if frozen.value is not None else []
        summaries += [scalar_summary(STATE_TAG, STATE_CODES[frozen.state]),
                      session_end_summary(status, end)]
        # one write: a worker killed meanwhile leaves the trial's end whole or absent, so
        # trial_recovered can tell whether to write it
        self._files.write_all(run, summaries, frozen.last_step or 0)
        self._files.forget(run)

    def trial_recovered(self, study: Study, frozen: FrozenTrial) -> None:
        """End the session of a trial whose worker died after the storage recorded its end,
        unless that worker ended the session first (a second end would add a second
        ``hpo/state`` point)."""
        if not holds_tag(self._run_dir(frozen), metadata.SESSION_END_INFO_TAG):
            _logger.info("Ending the TensorBoard session of trial %d: its worker died before "
                         "writing it.", frozen.number)
            self.trial_finished(study, frozen)

    # -- helpers ------------------------------------------------------------------------------

    def _run_dir(self, frozen: FrozenTrial) -> str:
        """The directory ``Trial.log_dir`` gave this trial (set when it started)."""
        return frozen.log_dir or os.path.join(self.logdir, f"trial_{frozen.number:04d}")

    def _write_experiment(self, study: Study, experiment: api_pb2.Experiment) -> None:
        if not self.columns:
            _logger.warning("Study %r has no recorded search space: TensorBoard's HParams "
                            "dashboard will have no columns.", study.study_name)
            return
        experiment.time_created_secs = time.time()
        summary = experiment_summary(experiment)
        try:
            created = write_once(os.path.join(self.logdir, EXPERIMENT_FILE), summary)
        except OSError as exc:
            _logger.warning("Could not write the HParams experiment to %s: %s", self.logdir, exc)
            return
        if created:
            _logger.info("TensorBoard HParams experiment written to %s", self.logdir)


def _space_description(study: Study, attrs: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    """The space's description: from the space, else as the study's ``attrs`` recorded it."""
    if study.space is not None:
        return study.space.describe()
    return attrs.get("space") or []


def _space_constants(study: Study, attrs: Mapping[str, Any]) -> Mapping[str, str]:
    """The space's constants (what each option of a choice shown by index holds)."""
    if study.space is not None:
        return study.space.constants()
    stored = attrs.get("space_constants")
    return stored if isinstance(stored, Mapping) else {}


def _metrics(study: Study, attrs: Mapping[str, Any]) -> list[MetricSpec]:
    """The metric columns. The reported one is named after the study's metric only where a
    call named it (``metric=``, ``keras_tune(objective=...)``): the default ``val_loss`` may
    not be what the objective reports (``HPOCallback("val_acc")``, a plain ``trial.report``)."""
    from hpo_plugins._study_open import METRIC_GIVEN_ATTR

    direction = study.direction.value
    given = attrs.get(METRIC_GIVEN_ATTR)
    return [
        (VALUE_TAG, "value", f"The trial's final value ({direction}): the objective's value "
                             f"(COMPLETE) or the last reported value (PRUNED); none for FAIL."),
        (INTERMEDIATE_TAG, f"last reported ({study.metric})" if given else "last reported",
         "The last value reported with trial.report; the Scalars tab shows the curve."),
        (STATE_TAG, "state", "The trial's final state: 1 COMPLETE, 2 PRUNED, 3 FAIL; empty "
                             "while it runs."),
    ]


def _description(study: Study) -> str:
    return (f"hpo_plugins study **{study.study_name}** ({study.direction.value}). Statuses: "
            f"Success = COMPLETE, Failure = FAIL, Unknown = PRUNED or still running; the "
            f"`hpo/state` metric gives the exact state.")


def _warn_if_reused(run: str) -> None:
    """A new trial's run must be empty: TensorBoard would mix old sessions there with this one.

    :func:`_check_owner` refuses such a logdir when the study opens; this catches a run that
    another study wrote since.
    """
    if any("tfevents" in name for name in os.listdir(run)):
        _logger.warning("%s already holds TensorBoard events (another study in the same "
                        "logdir?); TensorBoard will mix its sessions with this trial's. "
                        "Use a fresh logdir for each study.", run)


def _check_owner(study: Study, logdir: str, experiment: api_pb2.Experiment | None) -> None:
    """Refuse a logdir that holds another study's TensorBoard data (see the class).

    The runs are listed before the trials are counted: a trial is in the storage before its
    run exists, so a trial another process starts meanwhile is never taken for a stranger's.
    """
    runs = _trial_runs(logdir)
    stored = study.storage.count_trials(study.study_id)
    strangers = sorted(number for number in runs if number >= stored)
    fix = (f"Pass another logdir= for this study, or delete {logdir} if its runs are no "
           f"longer needed (deleting a study from its storage leaves its logdir in place).")
    theirs = _stored_experiment(logdir)
    if experiment is not None and theirs is not None and not _same_study(theirs, experiment):
        raise ConfigurationError(
            f"Expected logdir {logdir} to be empty or to hold the TensorBoard runs of study "
            f"{study.study_name!r}. Received: a logdir whose HParams "
            f"experiment is another study's or another search space's "
            f"({_summary_of(theirs)}); TensorBoard would show the two studies' trials as one "
            f"row per trial number. {fix}")
    if strangers and stored:
        # a study with trials: more likely its storage lost its last commits (a crash of the
        # machine) than another study's runs, which the experiment config would have shown
        _logger.warning("%s holds runs %s, but study %r has %d trial(s): TensorBoard may show "
                        "sessions of trials the storage does not have.", logdir,
                        [f"trial_{n:04d}" for n in strangers[:5]], study.study_name, stored)
    elif strangers:
        names = ", ".join(f"trial_{n:04d}" for n in strangers[:3])
        more = f" and {len(strangers) - 3} more" if len(strangers) > 3 else ""
        raise ConfigurationError(
            f"Expected logdir {logdir} to hold only the runs of study {study.study_name!r}'s "
            f"trials. Received: runs {names}{more}, but the study has {stored} trial(s): "
            f"another study (perhaps a deleted one of the same name) wrote them, and "
            f"TensorBoard would mix its sessions with this study's. {fix}")


def _trial_runs(logdir: str) -> set[int]:
    """The trial numbers of the ``trial_NNNN`` runs in ``logdir`` that hold event files."""
    try:
        names = os.listdir(logdir)
    except OSError:
        return set()
    numbers = set()
    for name in names:
        match = _TRIAL_RUN.match(name)
        if match is None:
            continue
        try:
            if any("tfevents" in f for f in os.listdir(os.path.join(logdir, name))):
                numbers.add(int(match.group(1)))
        except OSError:  # a file of that name, or a run deleted meanwhile
            continue
    return numbers


def _stored_experiment(logdir: str) -> api_pb2.Experiment | None:
    """The experiment config already in ``logdir``, if any."""
    for value in read_summary_values(os.path.join(logdir, EXPERIMENT_FILE),
                                     metadata.EXPERIMENT_TAG):
        return metadata.parse_experiment_plugin_data(value.metadata.plugin_data.content)
    return None


def _same_study(theirs: api_pb2.Experiment, ours: api_pb2.Experiment) -> bool:
    """Same study name and direction and the same columns (names and types, in any order:
    TensorBoard lists them by name). Descriptions,
    domains and metric names may differ: their wording may change between versions, and a
    resume may monitor another metric; a config whose description names no study (another
    writer's) counts as another study's."""
    return (_name_and_direction(theirs) == _name_and_direction(ours)
            and sorted((h.name, h.type) for h in theirs.hparam_infos)
            == sorted((h.name, h.type) for h in ours.hparam_infos))


def _name_and_direction(experiment: api_pb2.Experiment) -> tuple[str, str] | None:
    match = _DESCRIBED.search(experiment.description)
    return (match.group(1), match.group(2)) if match else None


def _summary_of(experiment: api_pb2.Experiment) -> str:
    described = _name_and_direction(experiment)
    name = f"study {described[0]!r}" if described else "an unknown study"
    labels = ", ".join(h.name for h in experiment.hparam_infos)
    return f"{name}, parameters {labels}"


def _check_study(study: Any) -> None:
    """Refuse anything but a Study (a logdir path, say) with the fix."""
    require_study(study, "a Study with a `logdir`",
                  "A study made with create_study(..., logdir=...) writes TensorBoard data by "
                  "itself; to browse a logdir, run `tensorboard --logdir PATH` or `hpo-plugins "
                  "tensorboard --study NAME`.")
