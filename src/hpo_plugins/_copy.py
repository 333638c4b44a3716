"""Copy a study, trials and all, from one storage to another.

The usual reason is a study that outgrew its storage: it started in the default SQLite file on a
laptop and now needs a database server that several machines can reach (or the reverse: a study
from the cluster's PostgreSQL, taken home as one SQLite file). The copy is a new study that
resumes exactly like the original: the same direction and settings (space, sampler, pruner,
seed, metric, user attributes), and every trial with its number, state, value, parameters,
curve, attributes and timestamps.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from hpo_plugins._frozen import TrialState
from hpo_plugins._study_open import refuse_missing_sqlite_file
from hpo_plugins.exceptions import ConfigurationError, DuplicateStudyError
from hpo_plugins.storages import Storage, default_storage_url, get_storage
from hpo_plugins.storages._base import params_key

__all__ = ["copy_study"]

_logger = logging.getLogger(__name__)


def copy_study(from_study_name: str, from_storage: Storage | str | None,
               to_storage: Storage | str | None,
               to_study_name: str | None = None) -> int:
    """Copy a study and all its trials into another storage (or under another name).

    Trials keep their numbers, states, values, parameters, curves, user and system attributes
    and timestamps; the study keeps its direction and every setting recorded with it, so
    ``create_study(..., load_if_exists=True)`` or ``hpo.minimize`` with the new storage resumes
    the copy where the original stopped, and a grid search does not repeat a point. The source
    is only read.

    The copy is written in one transaction: nobody sees it before it holds every trial, and a
    failure leaves nothing behind. The study's creation time is kept; ``copied_from`` among its
    attributes records the source.

    A copy under another name does not take the study's ``logdir`` (a warning says so): the
    two number their new trials alike and would share trial folders and TensorBoard runs. Pass
    ``logdir=`` when you run it. A copy under the same name into another storage keeps it: it
    is a move, so run the copy or the original afterwards, not both.

    Copy a study while nothing runs on it. A trial still RUNNING is copied as RUNNING with its
    last heartbeat (a warning says how many): a run on the copy fails it once its heartbeat is
    older than the grace period, as it would a trial whose worker died. A RUNNING trial without
    heartbeats (asked by hand) stays RUNNING until it is told, in the copy as in the source.
    Files the trials wrote (trial directories, TensorBoard runs) are not copied; the paths
    recorded with the trials and the study's ``logdir`` still point at them.

    Args:
        from_study_name: The study to copy.
        from_storage: Where it is: None (the default SQLite file), a URL or a Storage.
        to_storage: Where the copy goes: a URL (a SQLite file is created if missing; a server's
            database must exist) or a Storage.
        to_study_name: The copy's name; default: the same name.

    Returns:
        The number of trials copied.

    Raises:
        StudyNotFoundError: No study ``from_study_name`` (the message lists those that exist),
            or a SQLite source file that does not exist; nothing is created then.
        DuplicateStudyError: The destination already holds a study of that name; nothing is
            written.
        NotImplementedError: ``to_storage`` is a custom storage without
            :meth:`~hpo_plugins.storages.Storage.import_study`.

    Example:
        >>> import hpo_plugins as hpo
        >>> laptop = hpo.storages.InMemoryStorage()
        >>> study = hpo.minimize(lambda p: (p["x"] - 1) ** 2, {"x": hpo.hp.uniform("x", 0, 2)},
        ...                      n_trials=5, storage=laptop, study_name="demo", seed=0)
        >>> server = hpo.storages.InMemoryStorage()  # e.g. "postgresql+psycopg://host/hpo"
        >>> hpo.copy_study("demo", laptop, server)
        5
        >>> hpo.load_study("demo", server).best_value == study.best_value
        True
    """
    for name, value, optional in (("from_study_name", from_study_name, False),
                                  ("to_study_name", to_study_name, True)):
        if optional and value is None:
            continue
        if not isinstance(value, str) or not value.strip():
            raise ConfigurationError(
                f"Expected `{name}` to be the name of a study (a non-empty str"
                f"{', or None for the same name' if optional else ''}). Received: "
                f"{name}={value!r} (of type {type(value).__name__}).")
    target = from_study_name if to_study_name is None else to_study_name
    refuse_missing_sqlite_file(from_study_name, from_storage)
    source = _named("from_storage", _open_source, from_storage)
    try:
        study_id = source.get_study_id(from_study_name)  # missing: nothing opened or created
        destination = (source if to_storage is from_storage
                       else _named("to_storage", get_storage, to_storage))
        try:
            return _copy(source, study_id, from_study_name, destination, target)
        finally:
            if destination is not to_storage and destination is not source:
                destination.close()
    finally:
        if source is not from_storage:
            source.close()


def _named(name: str, opener: Callable[[Any], Storage], storage: Any) -> Storage:
    """``opener(storage)``, its ConfigurationError naming the argument ``name`` (the storage
    checks speak of `storage`, which copy_study has two of)."""
    try:
        return opener(storage)
    except ConfigurationError as exc:
        raise ConfigurationError(f"`{name}`: {exc}") from None


def _open_source(storage: Any) -> Storage:
    """The source storage, opened to read only: a database URL is opened without creating
    tables or upgrading a schema (as the command line's read commands open it), so a URL that
    names another program's database is left exactly as it was."""
    if storage is None or (isinstance(storage, str) and "://" in storage):
        from hpo_plugins.storages import SQLStorage

        return SQLStorage(storage or default_storage_url(), create=False)
    return get_storage(storage)


def _copy(source: Storage, study_id: int, name: str, destination: Storage, target: str) -> int:
    """Create study ``target`` in ``destination`` holding ``name``'s trials, in one step."""
    info = source.get_study(study_id)
    trials = source.get_all_trials(study_id)
    attrs = {**info.attrs, "copied_from": {"study": name, "storage": source.describe()}}
    if target != name and attrs.get("logdir"):
        # the two studies number their new trials alike: with one logdir they would share
        # trial folders (checkpoints included) and TensorBoard runs
        _logger.warning("The copy %r of study %r does not take its logdir %s: both would write "
                        "their new trials' folders and TensorBoard runs there. Pass logdir= "
                        "when you run the copy.", target, name, attrs["logdir"])
        attrs["logdir"] = None
    keys: list[str | None] = []
    taken: set[str] = set()
    for trial in trials:  # the first trial holding a configuration keeps its key
        key = params_key(trial.params) if trial.params else None
        keys.append(None if key is None or key in taken else key)
        if key is not None:
            taken.add(key)
    try:
        destination.import_study(target, info.direction, attrs, trials, keys,
                                 datetime_created=info.datetime_created)
    except DuplicateStudyError:
        raise DuplicateStudyError(
            f"Cannot copy study {name!r}: {destination.describe()} already holds a study named "
            f"{target!r}. Pass another to_study_name (--to-study on the command line), or "
            f"delete that study first.") from None
    unbeaten = [t.number for t in trials
                if t.state is TrialState.RUNNING and t.last_heartbeat is None]
    running = sum(t.state is TrialState.RUNNING for t in trials)
    if running:
        _logger.warning(
            "Study %r had %d RUNNING trial%s when copied; the copy holds %s as RUNNING. Copy a "
            "study while nothing runs on it.%s", name, running, "s" * (running != 1),
            "them" if running != 1 else "it",
            f" Trials {unbeaten} have no heartbeat (asked by hand), so no run fails them: "
            f"tell them, e.g. study.tell(number, state='FAIL')." if unbeaten else "")
    _logger.info("Copied study %r (%d trials) from %s to %s as %r.", name, len(trials),
                 source.describe(), destination.describe(), target)
    return len(trials)
