"""What every framework's resume of a lost trial shares: the chain of lost trials, carrying
their reports over, linking their last state in, and cleaning up once a trial has ended.

A trial whose worker dies is failed once its heartbeat is stale and, with ``max_retries``,
re-queued with the same parameters (:meth:`hpo_plugins.Study.requeue_lost`): the retry's
``system_attrs["retry_of"]`` names the trial it replaces. A framework integration that keeps a
resumable state file in each trial's folder (Lightning's ``lightning_objective``, Keras'
``keras_tune``, each with ``resume_lost_trials=True``) uses these helpers to find the newest
state along that chain and to start the retry from it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpo_plugins._frozen import TrialState

if TYPE_CHECKING:
    from hpo_plugins._frozen import FrozenTrial
    from hpo_plugins.trial import Trial

__all__ = ["RESUMED_ATTR", "RESUME_FAILED_ATTR", "Resume", "carry_over", "claim",
           "discard_stopped", "folders_to_clean", "give_up", "link_into", "lost_chain",
           "numbered", "register_discarder", "warn_without_retries"]

_logger = logging.getLogger(__name__)

#: The trial system attribute that says which lost trial's state a retry resumed from.
RESUMED_ATTR = "resumed_from"
#: The system attribute of a retry whose lost trial's state could not be loaded, and why.
RESUME_FAILED_ATTR = "resume_failed"

#: Each framework integration's way to delete its resumable state from one trial folder
#: (:func:`register_discarder`); used for trials whose worker could not clean up.
_DISCARDERS: list[Callable[[str], None]] = []


@dataclass(frozen=True)
class Resume:
    """Where a retry resumes: the lost trial, its state file, and the last report step that
    state covers."""

    trial: FrozenTrial
    checkpoint: str
    step: int


def lost_chain(trial: Trial) -> list[FrozenTrial]:
    """The lost trials ``trial`` replaces: the one it is a retry of, then that one's, ..."""
    if trial.system_attrs.get("retry_of") is None:
        return []
    return _chain({t.number: t for t in trial.study.get_trials()}, trial.system_attrs)


def _chain(by_number: Mapping[int, FrozenTrial],
           attrs: Mapping[str, Any]) -> list[FrozenTrial]:
    """The chain of lost trials from a trial's system attributes ``attrs`` (``retry_of``)."""
    chain: list[FrozenTrial] = []
    number = attrs.get("retry_of")
    while isinstance(number, int) and number in by_number and by_number[number] not in chain:
        chain.append(by_number[number])
        number = by_number[number].system_attrs.get("retry_of")
    return chain


_warned_without_retries: set[str] = set()


def warn_without_retries(trial: Trial, who: str) -> None:
    """Log once per study and process that ``who`` keeps resumable state for nothing: the study
    re-queues no lost trial (``max_retries=0``), so no retry resumes it, and the last state of
    a lost trial stays in its folder."""
    study = trial.study
    if study.max_retries or study.study_name in _warned_without_retries:
        return
    _warned_without_retries.add(study.study_name)
    _logger.warning("%s(resume_lost_trials=True) in study %r with max_retries=0: a lost trial "
                    "is not re-queued, so nothing resumes it, and its last saved state stays "
                    "in its folder. Pass max_retries=1 (or more).", who, study.study_name)


def numbered(folder: str, pattern: re.Pattern[str]) -> list[tuple[int, str]]:
    """``(number, path)`` of the entries of ``folder`` whose name ``pattern`` matches (its first
    group is the number), in number order; none when there is no such folder. Names are
    matched as they are, so a path holding ``[``, ``*`` or ``?`` is no pattern."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    found = []
    for name in names:
        match = pattern.match(name)
        if match:
            found.append((int(match.group(1)), os.path.join(folder, name)))
    return sorted(found)


def _find(trial: Trial,
                states: Callable[[str], list[tuple[int, str]]]) -> Resume | None:
    """The newest state along ``trial``'s chain of lost trials, or None (not a retry, or no
    lost trial saved one). ``states(log_dir)`` lists a trial folder's ``(step, path)`` states,
    newest last."""
    for lost in lost_chain(trial):
        found = states(lost.log_dir) if lost.log_dir else []
        if found:
            step, path = found[-1]
            return Resume(lost, path, step)
    return None


def claim(trial: Trial, states: Callable[[str], list[tuple[int, str]]],
          link: Callable[[str], str]) -> tuple[Resume, str] | None:
    """The newest state along ``trial``'s chain (:func:`_find`) and ``link(path)``: the
    copy the retry owns. A state deleted between the two (by a lost trial's worker that was
    wrongly judged dead and rotated its files) is looked for again; None when none is left."""
    for _ in range(3):
        resume = _find(trial, states)
        if resume is None:
            return None
        try:
            return resume, link(resume.checkpoint)
        except FileNotFoundError:
            _logger.info("%s was deleted as trial %d was about to resume from it; looking "
                         "again.", resume.checkpoint, trial.number)
    return None


def link_into(source: str, folder: str) -> str:
    """A hard link (else a copy) of ``source`` in ``folder``, under the same name; its path.

    Written under a temporary name and renamed, over any file of that name. A link keeps the
    state readable even if its owner deletes it (a worker wrongly judged dead that goes on
    rotating its files), and lets a further retry find it there. Only for files read, never
    written in place: a link shares its content with ``source``.
    """
    own = os.path.join(folder, os.path.basename(source))
    os.makedirs(folder, exist_ok=True)
    if os.path.exists(own) and os.path.samefile(own, source):
        return own
    _link_or_copy(source, own + ".tmp")
    os.replace(own + ".tmp", own)
    return own


def _link_or_copy(source: str, target: str) -> None:
    """Hard-link ``source`` as ``target``, else copy it (another file system, or no links).

    Raises:
        FileNotFoundError: ``source`` is gone.
    """
    try:
        os.link(source, target)
    except FileNotFoundError:
        raise
    except OSError:
        shutil.copyfile(source, target)


def carry_over(trial: Trial, resume: Resume, checkpoint: str) -> None:
    """Copy the lost trial's reports up to ``resume.step`` into ``trial`` (so the pruner and
    the study's TensorBoard run see the whole curve) and record where it resumed from."""
    lost = resume.trial
    for step in sorted(lost.intermediate_values):
        if step <= resume.step:
            trial.report(lost.intermediate_values[step], step)
    trial.set_system_attr(RESUMED_ATTR, {"trial": lost.number, "checkpoint": resume.checkpoint,
                                         "step": resume.step})
    _logger.info("Trial %d resumes lost trial %d from %s (step %d).", trial.number,
                 lost.number, checkpoint, resume.step)


def give_up(trial: Trial, resume: Resume, own: str, problem: str) -> None:
    """Record that ``trial`` trains from scratch because the lost trial's state at ``own``
    does not load (``build_fn`` or the module changed since, an unreadable file): a warning,
    and :data:`RESUME_FAILED_ATTR` with the lost trial, the state and the reason."""
    _logger.warning("Trial %d cannot resume lost trial %d from %s and trains from scratch: %s",
                    trial.number, resume.trial.number, own, problem)
    trial.set_system_attr(RESUME_FAILED_ATTR, {"trial": resume.trial.number,
                                               "checkpoint": resume.checkpoint,
                                               "error": problem})


def folders_to_clean(trial: Trial) -> list[str]:
    """The trial folders whose resumable state may be deleted now that ``trial``'s objective
    has returned in this process.

    If ``trial`` is still RUNNING, it ended here: its own folder and those of the lost trials
    of its chain, which nobody can resume any more. If it is not (this worker was judged dead:
    stopped or frozen past the grace period, and its trial failed meanwhile), the others are
    not this worker's to touch: its own folder only, and only when it is not being retried
    (see :func:`_retried`; a retry resumes from those files). Only folders under the study's
    own trial directory: a lost trial of a study copied from elsewhere records the original's
    folder, whose files belong to the original.
    """
    try:
        running = trial.study.storage.get_trial(trial.trial_id).state is TrialState.RUNNING
    except Exception as error:  # the storage is unreachable: keep the files, at worst they stay
        _logger.debug("Keeping the resume folders of trial %d: its state could not be read "
                      "(%s: %s).", trial.number, type(error).__name__, error)
        return []
    if running:
        folders = [trial.log_dir] + [t.log_dir for t in lost_chain(trial) if t.log_dir]
    elif _retried(trial):
        return []
    else:
        folders = [trial.log_dir]
    root = os.path.abspath(trial.study.artifact_root)
    return [f for f in folders if os.path.commonpath([root, os.path.abspath(f)]) == root]


def _retried(trial: Trial) -> bool:
    """Whether ``trial`` is being retried: a WAITING or RUNNING trial is a retry of it (directly
    or through a chain of lost retries), or none is yet but its retries are not used up (the
    check that failed it re-queues it a moment later)."""
    by_number = {t.number: t for t in trial.study.get_trials()}
    retries = [t for t in by_number.values()
               if any(lost.number == trial.number for lost in _chain(by_number, t.system_attrs))]
    if retries:
        return any(t.state in (TrialState.WAITING, TrialState.RUNNING) for t in retries)
    stored = by_number.get(trial.number)
    used = int(stored.system_attrs.get("retries", 0)) if stored is not None else 0
    return used < trial.study.max_retries


def register_discarder(discard: Callable[[str], None]) -> None:
    """Register ``discard(trial_folder)``, which deletes one framework's resumable state from a
    trial's folder (an integration registers it when it is imported, which the process that
    builds its objective has done)."""
    if discard not in _DISCARDERS:
        _DISCARDERS.append(discard)


def discard_stopped(study: Any, stopped: list[FrozenTrial]) -> None:
    """Delete the resumable state of trials that a parallel run stopped (Ctrl-C, an error in
    another trial) and will not retry: their workers were killed before the objective could
    clean up, as it does when a trial ends in its own process. The lost trials of each one's
    chain lose theirs too (nobody can resume them now); only folders under the study's own
    trial directory are touched."""
    if not _DISCARDERS or not stopped:
        return
    by_number = {t.number: t for t in study.get_trials()}
    root = os.path.abspath(study.artifact_root)
    for frozen in stopped:
        folders = [t.log_dir for t in [frozen, *_chain(by_number, frozen.system_attrs)]
                   if t.log_dir]
        for folder in folders:
            if os.path.commonpath([root, os.path.abspath(folder)]) != root:
                continue
            for discard in _DISCARDERS:
                try:
                    discard(folder)
                except OSError as exc:  # a file being written by a dying worker, say
                    _logger.warning("Could not delete the resumable state in %s: %s",
                                    folder, exc)
