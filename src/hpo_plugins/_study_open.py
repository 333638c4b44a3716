"""Creating, resuming, loading and deleting studies in a storage."""

from __future__ import annotations

import logging
import math
import numbers
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hpo_plugins._frozen import (
    Direction,
    TrialState,
)
from hpo_plugins._plugin_record import check_plugin, inherit, rebuild
from hpo_plugins._ported import seed_hint
from hpo_plugins._process import gone_here
from hpo_plugins._space_record import (
    SPACE_KEYS,
    check_resume,
    record_space,
    space_record,
    stored_space_difference,
)
from hpo_plugins._version import __version__
from hpo_plugins.exceptions import (
    ConfigurationError,
    DuplicateStudyError,
    StudyNotFoundError,
)
from hpo_plugins.pruners._base import NopPruner, Pruner
from hpo_plugins.samplers._base import Sampler, describe_object
from hpo_plugins.space import SearchSpace, as_space
from hpo_plugins.storages import (
    DEFAULT_STORAGE_ENV,
    Storage,
    StudyInfo,
    get_storage,
    missing_sqlite_file,
)

if TYPE_CHECKING:

    from hpo_plugins.study import Study


__all__ = ["DEFAULT_METRIC", "METRIC_GIVEN_ATTR", "create_study", "delete_study", "load_study",
           "refuse_missing_sqlite_file"]

#: The study module's logger: these functions were part of it, and users filter by name.
_logger = logging.getLogger("hpo_plugins.study")
DEFAULT_METRIC = "val_loss"  # what HPOCallback monitors when nobody named a metric
#: The settings a resume keeps when the call leaves them out, and records when it gives them.
_INHERITABLE = ("sampler", "pruner", "seed", "metric", "logdir")


# ---------------------------------------------------------------------------------------------
# Creating and loading


def create_study(space: Any = None, *, study_name: str | None = None,
                 storage: Storage | str | None = None,
                 direction: str | Direction = "minimize", sampler: Sampler | None = None,
                 pruner: Pruner | None = None, seed: int | None = None,
                 metric: str | None = None, logdir: str | None = None,
                 load_if_exists: bool = True, heartbeat_interval: float | None = 30.0,
                 grace_period: float | None = None, max_retries: int = 0) -> Study:
    """Create a study, or resume the one of that name.

    Args:
        space: A Hyperopt search space; validated here, so a bad space fails before trial 0.
        study_name: The study's name in the storage; default: a new unique name.
        storage: None (the default SQLite file ``hpo.db``, see
            :func:`hpo_plugins.storages.get_storage`), ``":memory:"``, a URL or a Storage.
        direction: ``"minimize"`` or ``"maximize"``.
        sampler: Default: :class:`~hpo_plugins.samplers.TPESampler` (ours; see
            docs/benchmarks.md). ``HyperoptTPESampler`` runs Hyperopt's own TPE.
        pruner: Default: :class:`~hpo_plugins.pruners.NopPruner`.
        seed: Makes the sequence of suggestions reproducible.
        metric: The metric adapters monitor by default. Left out (None): a new study gets
            ``"val_loss"``, a resumed one keeps the metric it was created with.
        logdir: Root of the trial directories (and TensorBoard runs).
        load_if_exists: Resume an existing study of that name (its trials are kept); when
            False, an existing name raises :class:`DuplicateStudyError`. A resume keeps the
            study's stored ``sampler``, ``pruner``, ``seed``, ``metric`` and ``logdir`` where
            this call leaves them out (None), and records the ones it gives: re-running a
            script without ``logdir=`` does not cut the study off from its TensorBoard runs,
            and one without ``metric=`` does not switch its adapters back to ``"val_loss"``.
            Once a call named the metric, another ``metric=`` is refused while trials hold
            values of it (their values could not be ranked with the new ones).
        heartbeat_interval: Seconds between heartbeats of trials run by the loop; None disables
            heartbeats (and so the detection of dead workers).
        grace_period: A RUNNING trial silent for longer is failed at the next ``ask``; default
            ``4 * heartbeat_interval``. With ``heartbeat_interval=None`` this process sends no
            heartbeats, but a ``grace_period`` still makes its ``ask`` fail the stale trials of
            other workers that do.
        max_retries: How many times a trial whose worker was lost is re-queued (failed for a
            stale heartbeat, by a launcher that saw its worker die, or stopped by SIGTERM, as a
            preempted machine is).

    Raises:
        SpaceError: The space is malformed or the sampler cannot handle it.
        ConfigurationError: An argument has the wrong type or range, or a resumed study has
            another direction or another space, or another metric while trials hold values of
            its own.
    """
    from hpo_plugins.samplers import TPESampler

    settings = _check_settings(direction, heartbeat_interval, grace_period, max_retries)
    direction, grace_period = settings
    _check_identity(study_name, seed, metric, logdir, load_if_exists)
    seed = None if seed is None else int(seed)  # numpy numbers become what JSON stores
    max_retries = int(max_retries)
    heartbeat_interval = None if heartbeat_interval is None else float(heartbeat_interval)
    grace_period = None if grace_period is None else float(grace_period)
    logdir = None if logdir is None else os.fspath(logdir)
    if logdir is not None:
        _make_logdir(logdir, "")
    parsed = as_space(space) if space is not None else None
    given = {"sampler": sampler is not None, "pruner": pruner is not None,
             "seed": seed is not None, "metric": metric is not None,
             "logdir": logdir is not None}
    metric = metric if metric is not None else DEFAULT_METRIC  # a new study's default
    sampler = sampler if sampler is not None else TPESampler()
    check_plugin(sampler, Sampler, "sampler")
    pruner = pruner if pruner is not None else NopPruner()
    check_plugin(pruner, Pruner, "pruner")
    if parsed is not None:
        sampler.check_space(parsed)
    store = get_storage(storage)
    name = study_name or _unique_name()
    attrs = _study_attrs(parsed, sampler, pruner, seed, metric, logdir, heartbeat_interval,
                         grace_period, max_retries)
    attrs[METRIC_GIVEN_ATTR] = given["metric"]
    study_id, kept, before = _create_or_resume(store, name, direction, attrs, load_if_exists,
                                       [key for key, is_given in given.items() if not is_given],
                                       parsed)
    if kept:  # a resume without these arguments goes on with the study's own
        if "sampler" in kept:
            sampler = inherit(store, study_id, name, kept["sampler"], Sampler, sampler)
        if "pruner" in kept:
            pruner = inherit(store, study_id, name, kept["pruner"], Pruner, pruner)
        seed = kept.get("seed", seed)
        metric = kept.get("metric", metric)
        if "logdir" in kept:
            logdir = kept["logdir"]
            _make_logdir(logdir, f"the logdir stored with study {name!r} ")
        if parsed is not None:
            sampler.check_space(parsed)
    from hpo_plugins.study import Study  # here: the study module imports this one

    try:
        return Study(study_name=name, storage=store, study_id=study_id, direction=direction,
                     space=parsed, sampler=sampler, pruner=pruner, seed=seed, metric=metric,
                     logdir=logdir, heartbeat_interval=heartbeat_interval,
                     grace_period=grace_period, max_retries=max_retries)
    except Exception:  # e.g. a logdir that holds another study's files
        _undo(store, study_id, before)
        raise


def _undo(store: Storage, study_id: int, before: Mapping[str, Any] | None) -> None:
    """Take back what a ``create_study`` whose Study was refused stored: the study itself if
    the call created it (and nothing ran on it meanwhile), else the settings it recorded. A
    refused logdir must not stay stored, or every later open of the study would be refused."""
    try:
        if before is None:
            if store.count_trials(study_id) == 0:
                store.delete_study(study_id)
            return
        for key in (*_INHERITABLE, METRIC_GIVEN_ATTR):
            if key in before:
                store.set_study_attr(study_id, key, before[key])
    except Exception as exc:  # the original error matters more; say what could not be undone
        _logger.warning("Could not take back the study settings of the refused call: %s", exc)


def _check_settings(direction: str | Direction, heartbeat_interval: float | None,
                    grace_period: float | None, max_retries: int
                    ) -> tuple[Direction, float | None]:
    parsed = Direction.parse(direction)
    for name, seconds in (("heartbeat_interval", heartbeat_interval),
                          ("grace_period", grace_period)):
        if seconds is not None and (isinstance(seconds, bool)
                                    or not isinstance(seconds, numbers.Real)
                                    or not math.isfinite(seconds) or not seconds > 0):
            raise ConfigurationError(
                f"Expected `{name}` to be a finite number of seconds > 0, or None. "
                f"Received: {name}={seconds!r}."
            )
    if grace_period is None and heartbeat_interval is not None:
        grace_period = 4.0 * heartbeat_interval
    if grace_period is not None and heartbeat_interval is not None and (
            grace_period <= heartbeat_interval):
        raise ConfigurationError(
            f"Expected `grace_period` to be longer than `heartbeat_interval` "
            f"({heartbeat_interval}). Received: grace_period={grace_period!r}."
        )
    if (isinstance(max_retries, bool) or not isinstance(max_retries, numbers.Integral)
            or max_retries < 0):
        raise ConfigurationError(
            f"Expected `max_retries` to be an integer >= 0. Received: max_retries={max_retries!r}."
        )
    return parsed, grace_period


def _check_name(study_name: Any) -> None:
    """Refuse a ``study_name`` that cannot name a stored study (load, delete)."""
    if not isinstance(study_name, str):
        raise ConfigurationError(
            f"Expected `study_name` to be the name of a study (a str). Received: "
            f"study_name={study_name!r} (of type {type(study_name).__name__}).")


def _check_identity(study_name: Any, seed: Any, metric: Any, logdir: Any,
                    load_if_exists: Any) -> None:
    """Refuse arguments of the wrong type before anything is stored."""
    if study_name is not None and (not isinstance(study_name, str) or not study_name.strip()):
        raise ConfigurationError(
            f"Expected `study_name` to be a non-empty str, or None for a new unique name. "
            f"Received: study_name={study_name!r}.")
    if study_name is not None and "\x00" in study_name:
        raise ConfigurationError(
            f"Expected `study_name` without a NUL character: it names the study's folders "
            f"(trial directories, TensorBoard runs), and no file system takes one. Received: "
            f"study_name={study_name!r}.")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
                             or not 0 <= int(seed) < 2 ** 63):
        raise ConfigurationError(
            f"Expected `seed` to be an integer >= 0, or None for a different run each time. "
            f"Received: seed={seed!r}.{seed_hint(seed)}")
    if metric is not None and (not isinstance(metric, str) or not metric):
        raise ConfigurationError(
            f"Expected `metric` to be the name of a logged metric, such as 'val_loss', or None "
            f"(a resume keeps the stored one, a new study uses 'val_loss'). Received: "
            f"metric={metric!r}.")
    if logdir is not None and not isinstance(logdir, (str, os.PathLike)):
        raise ConfigurationError(
            f"Expected `logdir` to be a directory path (str or pathlib.Path), or None. "
            f"Received: logdir={logdir!r} (of type {type(logdir).__name__}).")
    if not isinstance(load_if_exists, bool):
        raise ConfigurationError(
            f"Expected `load_if_exists` to be True or False. Received: "
            f"load_if_exists={load_if_exists!r}.")


def _make_logdir(logdir: str, whose: str) -> None:
    """Create ``logdir`` now, not at the first trial's TensorBoard write, which only logs its
    failure; ``whose`` names a stored one in the message."""
    try:
        os.makedirs(logdir, exist_ok=True)
    except OSError as exc:
        fix = ("; pass logdir= to use another one" if whose else "")
        raise ConfigurationError(
            f"Expected `logdir` to be a directory this process can create and write. "
            f"Received: {whose}{logdir!r}, which failed: {exc}{fix}.") from None


def _unique_name() -> str:
    import datetime as dt
    import uuid

    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"study-{stamp}-{uuid.uuid4().hex[:6]}"


def _study_attrs(space: SearchSpace | None, sampler: Sampler, pruner: Pruner, seed: int | None,
                 metric: str, logdir: str | None, heartbeat_interval: float | None,
                 grace_period: float | None, max_retries: int) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "sampler": describe_object(sampler), "pruner": describe_object(pruner), "seed": seed,
        "metric": metric, "logdir": None if logdir is None else os.path.abspath(logdir),
        "heartbeat_interval": heartbeat_interval, "grace_period": grace_period,
        "max_retries": max_retries, "hpo_plugins_version": __version__,
    }
    if space is not None:
        attrs.update(space_record(space))
    return attrs


def _create_or_resume(store: Storage, name: str, direction: Direction,
                      attrs: Mapping[str, Any], load_if_exists: bool, inherit: Sequence[str],
                      space: SearchSpace | None
                      ) -> tuple[int, dict[str, Any], dict[str, Any] | None]:
    """Create the study, or resume it: then the stored settings named in ``inherit`` (those
    the call left out) are kept and returned; the others are overwritten by ``attrs``. The
    third value is the study's stored attributes before this call (None: it created it).
    ``space`` is the parsed space of ``attrs``, checked against the stored one."""
    try:
        study_id = store.create_study(name, direction, attrs)
        _logger.info("Created study %r in %s.", name, store.describe())
        return study_id, {}, None
    except DuplicateStudyError:
        if not load_if_exists:
            raise DuplicateStudyError(
                f"A study named {name!r} already exists in {store.describe()}. Pass "
                f"load_if_exists=True to resume it, or choose another study_name."
            ) from None
    study_id = store.get_study_id(name)
    info = store.get_study(study_id)
    check_resume(info.name, info.direction, info.attrs, direction, space,
                 store.describe() if getattr(store, "portable_url", None) else None)
    if "metric" not in inherit:
        _check_metric_switch(store, info, attrs["metric"])
        if not info.attrs.get(METRIC_GIVEN_ATTR):
            store.set_study_attr(study_id, METRIC_GIVEN_ATTR, True)
    kept = {key: info.attrs[key] for key in inherit
            if key in info.attrs and info.attrs[key] is not None}
    for key in _INHERITABLE:
        if key not in kept:
            store.set_study_attr(study_id, key, attrs[key])
    if space is not None and (any(info.attrs.get(key) is None for key in SPACE_KEYS)
                              or info.attrs["space_fingerprint"] != space.fingerprint):
        record_space(store, study_id, name, info.attrs, attrs)
    done = sum(info.n_trials.values())
    _logger.info("Resuming study %r in %s (%d trials so far).", name, store.describe(), done)
    if "logdir" not in kept:
        _warn_moved_logdir(name, info.attrs.get("logdir"), attrs.get("logdir"), done)
    if "seed" not in kept:
        _warn_changed_seed(name, info.attrs.get("seed"), attrs.get("seed"), done)
    if kept:
        _logger.info("Study %r keeps its stored %s (not given in this call).", name,
                     ", ".join(sorted(kept)))
    return study_id, kept, dict(info.attrs)


def _warn_moved_logdir(name: str, before: Any, after: Any, done: int) -> None:
    """Warn that a resume writes the study's TensorBoard runs to another logdir than its
    earlier trials: TensorBoard on either folder shows part of the study, and nothing said so
    (``hpo-plugins tensorboard`` serves the new one only)."""
    if not (done and isinstance(before, str) and isinstance(after, str)):
        return
    if os.path.abspath(before) == os.path.abspath(after):
        return
    _logger.warning(
        "Study %r: its %d earlier trial(s) wrote their TensorBoard runs to %s, and this run "
        "writes to %s, so TensorBoard on either folder shows only part of the study "
        "(hpo-plugins tensorboard serves the new one). Leave logdir= out to go on in the "
        "study's own logdir.",
        name, done, before, after)


def _warn_changed_seed(name: str, before: Any, after: Any, done: int) -> None:
    """Warn that a resume replaces the seed the study's earlier trials were drawn with: the
    study then records only the new one, so those trials can no longer be reproduced from
    it, and a loop of replicates (``for seed in (0, 1, 2): hpo.minimize(..., seed=seed)``)
    under one derived name silently became one study."""
    if not done or before is None or after is None or before == after:
        return
    _logger.warning(
        "Study %r: its %d earlier trial(s) were drawn with seed=%s, and this run uses "
        "seed=%s, which the study records from now on: the earlier trials can no longer be "
        "reproduced from the recorded seed. For independent runs (replicates), give each seed "
        "its own study_name (e.g. study_name='%s-seed%s'); leave seed= out to go on with the "
        "study's own.", name, done, before, after, name, after)


def _check_metric_switch(store: Storage, info: StudyInfo, metric: str) -> None:
    """Refuse a resume that names another metric than the one a call named for the study while
    trials hold values of it: later trials would be ranked against values of another quantity
    (training ``loss`` against ``val_loss``) and ``best_trial`` would mean nothing.

    A study whose stored metric is only the default (no call named one: its objective may
    report another metric through ``HPOCallback("val_acc")``), or whose trials all failed (a
    typo in the first run's metric), may switch.
    """
    stored = info.attrs.get("metric")
    if stored is None or stored == metric or not info.attrs.get(METRIC_GIVEN_ATTR):
        return
    valued = sum(info.n_trials.get(state, 0) for state in _VALUED_STATES)
    if info.n_trials.get(TrialState.RUNNING):  # all but those whose process is gone unreported
        valued += sum(bool(t.intermediate_values) or not gone_here(t.system_attrs.get("worker"))
                      for t in store.get_all_trials(info.study_id, [TrialState.RUNNING]))
    if not valued:
        return
    raise ConfigurationError(
        f"Study {info.name!r} exists with metric={stored!r}, and {valued} of its trials hold "
        f"{stored!r} values; this call asked for metric={metric!r}, whose values cannot be "
        f"ranked with them. Pass metric={stored!r} (or leave it out) to resume this study, or "
        f"choose another study_name for {metric!r}."
    )


#: Study attribute: whether a call named the study's ``metric`` (else it is the default).
METRIC_GIVEN_ATTR = "metric_given"

#: The states of trials that hold values of the study's metric (RUNNING ones count when they
#: reported).
_VALUED_STATES = (TrialState.COMPLETE, TrialState.PRUNED)


def load_study(study_name: str, storage: Storage | str | None = None, *, space: Any = None,
               sampler: Sampler | None = None, pruner: Pruner | None = None) -> Study:
    """Open an existing study.

    Without ``space`` the study can be read (trials, best values, exports) and its trials can
    report and prune, but it cannot ``ask``. The pruner is rebuilt from the study's record when
    not given, so a child process prunes exactly like its parent.

    Raises:
        StudyNotFoundError: No such study; the message lists the studies in the storage. A
            SQLite file that does not exist (a mistyped path) is refused before it is opened,
            so nothing is created.
    """
    if sampler is not None:
        check_plugin(sampler, Sampler, "sampler")
    if pruner is not None:
        check_plugin(pruner, Pruner, "pruner")
    _check_name(study_name)
    refuse_missing_sqlite_file(study_name, storage)
    store = get_storage(storage)
    study_id = store.get_study_id(study_name)
    info = store.get_study(study_id)
    attrs = info.attrs
    parsed = as_space(space) if space is not None else None
    difference = None if parsed is None else stored_space_difference(attrs, parsed)
    if difference is not None:
        raise ConfigurationError(
            f"Study {study_name!r} was created with another search space{difference}. "
            f"Expected the space it was created with: pass that one as space=."
        )
    if parsed is not None and sampler is None:
        from hpo_plugins.samplers import TPESampler

        sampler = rebuild(attrs.get("sampler"), Sampler, "TPESampler()") or TPESampler()
    pruner = pruner or rebuild(attrs.get("pruner"), Pruner,
                               "NopPruner(): trials here are not pruned") or NopPruner()
    interval = attrs.get("heartbeat_interval")
    from hpo_plugins.study import Study  # here: the study module imports this one

    return Study(study_name=study_name, storage=store, study_id=study_id,
                 direction=info.direction, space=parsed, sampler=sampler, pruner=pruner,
                 seed=attrs.get("seed"), metric=attrs.get("metric") or DEFAULT_METRIC,
                 logdir=attrs.get("logdir"), heartbeat_interval=interval,
                 grace_period=attrs.get("grace_period"),
                 max_retries=int(attrs.get("max_retries") or 0))


def delete_study(study_name: str, storage: Storage | str | None = None, *,
                 missing_ok: bool = False) -> None:
    """Delete a study and all its trials (values, reports, attributes) from the storage.

    It cannot be undone. Only the database records go: files the trials wrote (trial
    directories, TensorBoard runs under the study's ``logdir``) stay on disk. A worker still
    running one of its trials gets an error when it reports or tells.

    Args:
        study_name: The study's name.
        storage: As in :func:`load_study`: None (the default SQLite file), a URL or a Storage.
        missing_ok: Return quietly when there is no such study (or no such SQLite file), as a
            script that starts afresh on every run wants (Keras Tuner's ``overwrite=True``).

    Raises:
        StudyNotFoundError: No such study (the message lists the studies in the storage), or a
            SQLite file that does not exist, unless ``missing_ok``; nothing is created then.

    Example:
        >>> import hpo_plugins as hpo
        >>> storage = hpo.storages.InMemoryStorage()
        >>> _ = hpo.create_study(space={"x": hpo.hp.uniform("x", 0, 1)}, study_name="old",
        ...                      storage=storage)
        >>> hpo.delete_study("old", storage)
        >>> [info.name for info in storage.list_studies()]
        []
    """
    _check_name(study_name)
    if not isinstance(missing_ok, bool):
        raise ConfigurationError(
            f"Expected `missing_ok` to be True or False. Received: missing_ok={missing_ok!r}.")
    try:
        refuse_missing_sqlite_file(study_name, storage)
    except StudyNotFoundError:
        if missing_ok:
            return
        raise
    store = get_storage(storage)
    try:
        try:
            study_id = store.get_study_id(study_name)
        except StudyNotFoundError:
            if missing_ok:
                return
            raise
        store.delete_study(study_id)
        _logger.info("Deleted study %r and its trials from %s.", study_name, store.describe())
    finally:
        if store is not storage:  # opened here: close it (a given Storage stays open)
            store.close()


def refuse_missing_sqlite_file(study_name: str, storage: Any) -> None:
    """Raise StudyNotFoundError when ``storage`` is a SQLite URL whose file does not exist.

    Opening it would create the file and write the library's tables into it, only to find no
    study there: functions that need an existing study (``load_study``, ``delete_study``)
    create nothing. The command line's read commands use the same rule.
    """
    path = missing_sqlite_file(storage)
    if path is None:
        return
    where = (f" (the default storage: ${DEFAULT_STORAGE_ENV}, else sqlite:///hpo.db in the "
             f"working directory)" if storage is None else "")
    raise StudyNotFoundError(
        f"No study named {study_name!r}: the SQLite file {path}{where} does not exist, and "
        f"nothing was created. Expected the URL of an existing study's file: check the path "
        f"(three slashes before a relative one, 'sqlite:///runs/hpo.db', four before an "
        f"absolute one), or create the study with create_study.")
