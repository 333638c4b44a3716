"""What a study records about its space, and how a space given on resume differs from it
(the fingerprint, the stored description and constants)."""

from __future__ import annotations

import logging
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from hpo_plugins._frozen import (
    Direction,
)
from hpo_plugins._text import clip, few
from hpo_plugins.exceptions import (
    ConfigurationError,
    StudyNotFoundError,
)
from hpo_plugins.space import SearchSpace
from hpo_plugins.storages import (
    Storage,
)

__all__ = ["SPACE_KEYS", "check_resume", "earlier_derived_name", "earlier_fingerprints",
           "record_space", "space_record", "stored_space_difference"]

#: The study module's logger: these functions were part of it, and users filter by name.
_logger = logging.getLogger("hpo_plugins.study")


#: The study attributes that record its space (see :func:`space_record`).
SPACE_KEYS = ("space", "space_fingerprint", "space_constants")


def space_record(space: SearchSpace) -> dict[str, Any]:
    """What a study stores about its space: the description (tables, plots and the CLI read
    it without the space), the fingerprint, and the constants (values outside ``hp``
    expressions and the content of choice options that the description shows by index), so
    a resume with an edited constant is refused with what changed. All JSON."""
    return {"space": space.describe(), "space_fingerprint": space.fingerprint,
            "space_constants": space.constants()}


def record_space(store: Storage, study_id: int, name: str, stored: Mapping[str, Any],
                 attrs: Mapping[str, Any]) -> None:
    """Record the space of a resumed study that has no (full) record of it: one created
    without a space (ask/tell by hand), so readers without the space (the CLI, exports, plots)
    show its parameters; or one stored before constants were recorded, so later resumes check
    them too (this one could not: nothing recorded what they were); or one recorded as an
    earlier version read it (:attr:`SearchSpace.earlier_fingerprints`), so readers show what
    this version shows (a choice of numpy scalars by its values)."""
    if stored.get("space_fingerprint") is not None and stored.get("space_constants") is None:
        _logger.info("Study %r: recorded the constants of its space (values outside hp "
                     "expressions, choice options); from now on a resume checks them too.", name)
    for key in SPACE_KEYS:
        store.set_study_attr(study_id, key, attrs[key])


def check_resume(name: str, stored_dir: Direction, stored: Mapping[str, Any],
                 direction: Direction, space: SearchSpace | None, url: str | None = None
                 ) -> None:
    """Refuse a resume with another direction or another space; ``url`` (the storage's, if it
    has one) makes the advised ``delete_study`` call one that can be pasted as it is."""
    if stored_dir is not direction:
        raise ConfigurationError(
            f"Study {name!r} exists with direction={stored_dir.value!r}; this call asked for "
            f"{direction.value!r}. Use the same direction, or another study_name."
        )
    difference = None if space is None else stored_space_difference(stored, space)
    if difference is not None:
        where = repr(url) if url else "storage"
        cli_storage = f" --storage {shlex.quote(url)}" if url else ""
        raise ConfigurationError(
            f"Study {name!r} exists with another search space{difference}. Expected the space "
            f"it was created with: restore it to resume this study. To search the new space, "
            f"choose another study_name, or delete the old study "
            f"(hpo.delete_study({name!r}, {where}) or "
            f"`hpo-plugins delete --study {shlex.quote(name)}{cli_storage}`)."
            f"{_CHANGING_CONSTANT_HINT if 'constants ' in difference else ''}"
        )


#: Said when constants differ: one that changes by itself between runs is a likely cause.
_CHANGING_CONSTANT_HINT = (
    " A value that changes from run to run by itself (a timestamped folder, a temporary "
    "directory, the date) does not belong in the space: pass it to the objective another way "
    "(a functools.partial argument, a global).")


def stored_space_difference(stored: Mapping[str, Any], space: SearchSpace) -> str | None:
    """How ``space`` differs from the space recorded in a study's attributes ``stored``, as
    `` (...)`` for a message; None when it is the same, or the study recorded none.

    A study stored before constants were recorded (no ``space_constants``) holds the
    fingerprint of the parameters only (:attr:`SearchSpace.parameters_fingerprint`): it is
    compared on those, so it still opens and resumes with its space (the constants are then
    recorded, and checked from the next resume on).
    """
    old = stored.get("space_fingerprint")
    if old is None:
        return None
    pairs = space.earlier_fingerprints  # this version's reading of the space first
    if stored.get("space_constants") is None:
        same = any(old in pair for pair in pairs)
    else:
        same = any(old == fingerprint for fingerprint, _ in pairs)
    return None if same else _space_changes(stored, space_record(space))


def earlier_fingerprints(space: SearchSpace) -> list[str]:
    """The fingerprints earlier versions gave ``space`` (other than its own), from which they
    derived study names: see :func:`earlier_derived_name`."""
    found = [f for pair in space.earlier_fingerprints for f in pair]
    return [f for i, f in enumerate(found) if f != space.fingerprint and f not in found[:i]]


def earlier_derived_name(store: Storage, name: str, earlier: Sequence[str],
                         space: SearchSpace) -> str:
    """The derived study name to use: ``name``, or one of ``earlier`` to go on with a study
    that an earlier version named.

    Earlier versions derived other names for some spaces: from
    :attr:`~SearchSpace.parameters_fingerprint` (before constants counted in the fingerprint)
    for a space with constants, and from another reading of a choice of numpy scalars (before
    they were read as their values: see :attr:`SearchSpace.earlier_fingerprints`). Such a
    study is resumed under its name, so an upgrade does not start a script's study afresh,
    as long as no study of the new name exists and the space is the one it records (once
    resumed, it records this version's reading, so a later edit gets a new study again).
    """
    try:
        store.get_study_id(name)
        return name
    except StudyNotFoundError:
        pass
    for candidate in earlier:
        if candidate == name:
            continue
        try:
            info = store.get_study(store.get_study_id(candidate))
        except StudyNotFoundError:
            continue
        if stored_space_difference(info.attrs, space) is None:
            _logger.info("Study %r: the name that an earlier version derived for this space, "
                         "kept (a new study would be %r).", candidate, name)
            return candidate
    return name


def _space_changes(stored: Mapping[str, Any], attrs: Mapping[str, Any]) -> str:
    """What differs between the stored space and this one, from their records: labels only
    in one, parameters whose kind, bounds, options or conditions changed, and constants
    changed, added or removed (at most five of each named); the fingerprints when a
    description is missing."""
    before, after = stored.get("space"), attrs.get("space")
    if not isinstance(before, (list, tuple)) or not isinstance(after, (list, tuple)):
        return (f" (fingerprint {stored.get('space_fingerprint')}, this one "
                f"{attrs.get('space_fingerprint')})")
    old = {str(p.get("label")): p for p in before if isinstance(p, Mapping)}
    new = {str(p.get("label")): p for p in after if isinstance(p, Mapping)}
    parts = []
    if gone := [label for label in old if label not in new]:
        parts.append(f"only in the stored space: {few(gone)}")
    if added := [label for label in new if label not in old]:
        parts.append(f"only in this one: {few(added)}")
    changed = [f"{label} ({_shown_param(old[label])} -> {_shown_param(new[label])})"
               for label in old if label in new and old[label] != new[label]]
    if changed:
        parts.append(f"changed: {few(changed)}")
    parts.extend(_constant_changes(stored.get("space_constants"), attrs.get("space_constants")))
    return f" ({'; '.join(parts)})" if parts else " (the same parameters, in another order)"


def _constant_changes(before: Any, after: Any) -> list[str]:
    """The constants (:meth:`SearchSpace.constants`) that differ, by where they are: changed
    (old -> new), only in the stored space, only in this one. Nothing when either record is
    missing (a study stored before constants were recorded)."""
    if not isinstance(before, Mapping) or not isinstance(after, Mapping):
        return []
    parts = []
    if changed := [f"{where}: {clip(before[where])} -> {clip(after[where])}"
                   for where in before if where in after and before[where] != after[where]]:
        parts.append(f"constants changed: {few(changed, sep='; ')}")
    if gone := [f"{where}: {clip(before[where])}" for where in before if where not in after]:
        parts.append(f"constants only in the stored space: {few(gone, sep='; ')}")
    if added := [f"{where}: {clip(after[where])}" for where in after if where not in before]:
        parts.append(f"constants only in this one: {few(added, sep='; ')}")
    return parts






def _shown_param(param: Mapping[str, Any]) -> str:
    """One parameter's description, short: its kind and arguments, options, conditions."""
    args = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in (param.get("args") or {}).items())
    text = f"{param.get('kind')}({args})" if args else str(param.get("kind"))
    if param.get("options"):
        text += f" options {param['options']}"
    conditions = [c for c in param.get("conditions") or [] if c]
    if conditions:
        text += f" when {conditions}"
    return text
