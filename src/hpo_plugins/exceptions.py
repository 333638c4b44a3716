"""Every error hpo_plugins raises, in one hierarchy.

::

    HPOError
     +-- SpaceError              a search space that cannot be used (raised at study creation)
     +-- ConfigurationError      a bad argument (type, range, incompatible options)
     |    +-- ForeignArgumentError  another library's argument name (also a ``TypeError``)
     +-- StorageError            the storage cannot do what was asked
     |    +-- StudyNotFoundError
     |    +-- DuplicateStudyError
     |    +-- TrialNotFoundError
     |    +-- TrialFinishedError    finished trials are immutable
     |    +-- DuplicateParamsError  a deduplicating sampler proposed parameters another trial holds
     |    +-- DatabaseUnreachableError  the database server could not be reached (for too long)
     +-- NoActiveTrialError      ``current_trial()`` outside a trial
     +-- ClusterLostError        a distributed run lost its scheduler and stopped
     +-- RemoteObjectiveError    an objective's exception that could not travel back as itself
     +-- WorkerStartError        a worker process died before any trial could start in it
     +-- TooManyFailuresError    trials kept failing, so the run stopped (``FailureStop``)
     +-- SearchSpaceExhausted    a sampler has nothing new to propose (e.g. the grid is done)
     +-- StudyFull               ``ask(limit=...)``: the study already holds ``max_trials`` trials
     +-- MissingDependencyError  an optional extra is not installed (also an ``ImportError``)
    TrialPruned                  raised by an objective to stop its trial as PRUNED

Messages say what was expected, what came in, and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "ClusterLostError",
    "ConfigurationError",
    "DatabaseUnreachableError",
    "DuplicateParamsError",
    "DuplicateStudyError",
    "ForeignArgumentError",
    "HPOError",
    "MissingDependencyError",
    "NoActiveTrialError",
    "RemoteObjectiveError",
    "SearchSpaceExhausted",
    "SpaceError",
    "StorageError",
    "StudyFull",
    "StudyNotFoundError",
    "TooManyFailuresError",
    "TrialFinishedError",
    "TrialNotFoundError",
    "TrialPruned",
    "WorkerStartError",
]


class HPOError(Exception):
    """Base class of every error raised by hpo_plugins."""


class SpaceError(HPOError, ValueError):
    """The search space is malformed, has a duplicate label or an unsupported expression."""


class ConfigurationError(HPOError, ValueError):
    """An argument has the wrong type or value, or options contradict each other."""


class ForeignArgumentError(ConfigurationError, TypeError):
    """A call used another library's argument (``max_evals=``, ``algo=``, Keras Tuner's
    ``directory=``) or passed by position what is taken by keyword; the message names what to
    write instead. Also a ``TypeError``, which Python raises for such a call, so code that
    catches that keeps working."""


class StorageError(HPOError):
    """The storage could not carry out an operation."""


class DatabaseUnreachableError(StorageError):
    """The database server could not be reached, or dropped the connection during a call.

    A server storage (PostgreSQL) retries for its ``reconnect_timeout`` first, where that is
    safe (see :class:`~hpo_plugins.storages.SQLStorage`); this is raised when the server stays
    away longer, or when a write was cut off while it may have been committed, so that running
    it again could apply it twice.

    Attributes:
        maybe_committed: The call may have changed the database before the connection broke
            (a write cut off during its commit); False when nothing of it reached the server.
    """

    def __init__(self, message: str, *, maybe_committed: bool = False) -> None:
        super().__init__(message)
        self.maybe_committed = maybe_committed


class StudyNotFoundError(StorageError, KeyError):
    """No study of that name exists in the storage."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DuplicateStudyError(StorageError):
    """A study of that name already exists and ``load_if_exists`` was false."""


class TrialNotFoundError(StorageError, KeyError):
    """No trial with that id exists in the storage."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class TrialFinishedError(StorageError):
    """The trial is already finished; finished trials are immutable."""


class DuplicateParamsError(StorageError):
    """Another trial of the study already holds these parameters (deduplicating samplers)."""


class NoActiveTrialError(HPOError, RuntimeError):
    """``current_trial()`` was called where no trial is running."""


class ClusterLostError(HPOError, RuntimeError):
    """A distributed run (Dask) lost its cluster's scheduler, so it stopped.

    Trials already on workers are left to them (when the study sends heartbeats): one that
    finishes keeps its result; one whose worker dies is failed as lost once its heartbeat is
    older than the grace period, and re-queued under ``max_retries``. Run the same command
    again once the cluster is back.
    """


class WorkerStartError(HPOError, RuntimeError):
    """A launcher's worker process died before any trial of the run could start in it.

    Most often the script starts the run at module level, without ``if __name__ ==
    "__main__":``: each new worker process imports the main script again and would start a run
    of its own (the run refuses that with a :class:`ConfigurationError` in the worker). Other
    causes: an import that crashes the new process (a broken CUDA install), too little memory.
    Retrying would only start more processes that die the same way, so the run stops.
    """


class TooManyFailuresError(HPOError, RuntimeError):
    """Trials kept failing, so the run stopped: raised by ``optimize`` (after the trials still
    running have finished) when :class:`~hpo_plugins.stoppers.FailureStop` ends it.

    Attributes:
        trial_numbers: The numbers of the failed trials in a row.
    """

    def __init__(self, message: str, trial_numbers: list[int] | None = None) -> None:
        super().__init__(message)
        self.trial_numbers = list(trial_numbers or [])

    def __reduce__(self) -> tuple[type, tuple[str, list[int]]]:
        return type(self), (str(self), self.trial_numbers)


class RemoteObjectiveError(HPOError, RuntimeError):
    """An exception the objective raised in a worker process, which could not be sent back to
    the launcher as itself, so it arrives as text: its type, message and traceback.

    Exceptions travel between processes by pickling. Some cannot: an exception class made in
    the script run as ``__main__`` (a process started afresh imports that script under another
    name), one holding an unpicklable object, or one whose pickle does not rebuild it (an
    ``__init__`` with other arguments than the exception's ``args``, as botocore's
    ``ClientError``). Without this stand-in the run mistook such an error for a dead worker
    process and ran another trial, or raised a ``PicklingError`` instead.

    Attributes:
        type_name: The qualified name of the original exception's class.
        remote_traceback: Its traceback in the worker, as text.
    """

    def __init__(self, message: str, type_name: str = "", remote_traceback: str = "") -> None:
        super().__init__(message)
        self.type_name = type_name
        self.remote_traceback = remote_traceback

    def __reduce__(self) -> tuple[type, tuple[str, str, str]]:
        return type(self), (str(self), self.type_name, self.remote_traceback)


class SearchSpaceExhausted(HPOError):
    """The sampler has no new configuration to propose (for example, a finished grid)."""


class StudyFull(HPOError):
    """``ask(limit=...)`` found the study already holding ``limit`` trials (``max_trials``).

    The run loop catches it and stops; call ``ask`` without ``limit``, or raise ``max_trials``,
    to add trials anyway.
    """

    def __init__(self, limit: int | None) -> None:
        super().__init__(f"the study already holds max_trials={limit} trials or more "
                         f"(RUNNING, COMPLETE and PRUNED ones count); raise max_trials to run "
                         f"more")
        self.limit = limit


class MissingDependencyError(HPOError, ImportError):
    """An optional dependency is missing; the message names the ``pip install`` to run."""


class TrialPruned(Exception):
    """Raise inside an objective to end the trial as PRUNED.

    Adapters never raise it through a framework; they set the framework's stop flag and mark the
    trial instead. It is not an :class:`HPOError` because it signals control flow, not a fault.
    """


def is_trial_pruned(exc: BaseException) -> bool:
    """Whether ``exc`` asks to end its trial as PRUNED: :class:`TrialPruned`, or Optuna's
    ``TrialPruned``, which an objective ported from Optuna raises after ``should_prune()``
    (read by name, so Optuna need not be installed)."""
    return isinstance(exc, TrialPruned) or any(
        kind.__module__.startswith("optuna") and kind.__name__ == "TrialPruned"
        for kind in type(exc).__mro__)


def missing_dependency(module: str, extra: str) -> MissingDependencyError:
    """Build the error for an optional import that failed."""
    return MissingDependencyError(
        f"`{module}` is needed for this feature but is not installed. "
        f"Install it with: pip install 'hpo_plugins[{extra}]'"
    )
