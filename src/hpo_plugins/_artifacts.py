"""One study per trial-directory root: where a study's trial folders go.

Trial folders are named by trial number only (``trial_0007``), so two studies under one root
would write into each other's folders: the same study name in two storages, or a study deleted
and created again under its name. Script mode's ``stdout.log`` of one would overwrite the
other's, and a Lightning ``best.ckpt`` recorded by one study could hold the other's model.

The first study to make a trial folder under a root records itself there, in
:data:`MARKER` (its name and creation time: a study copied under the same name into another
storage keeps both, and shares its folders, as a move should). Another study that finds the
root taken:

* with its default root (``hpo_runs/<study name>``, no ``logdir``) uses
  ``hpo_runs/<study name>-<its creation time>`` instead, with a warning: nothing to choose,
  nothing overwritten;
* with a ``logdir`` it was given is refused with :class:`ConfigurationError`: that folder was
  the user's choice, and only the user can pick another one or delete the old runs.

A root without a marker (an older study, or none yet) is taken by the first study that makes a
trial folder there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
import time
import weakref
from typing import TYPE_CHECKING, Any

from hpo_plugins.exceptions import ConfigurationError

if TYPE_CHECKING:
    from hpo_plugins.study import Study

__all__ = ["MARKER", "claim_root", "read_owner", "resolve_root"]

_logger = logging.getLogger(__name__)

#: The file in a trial-directory root that names the study owning it.
MARKER = ".hpo_plugins_study.json"


def resolve_root(study: Study) -> str:
    """The root of ``study``'s trial folders (see the module); creates nothing.

    Raises:
        ConfigurationError: The study's ``logdir`` holds another study's trial folders.
    """
    base = _base(study)
    owner = read_owner(base)
    if owner is None:
        return base
    mine = _identity(study)
    if owner == mine:
        return base
    if study.logdir is not None and owner.get("study") == study.study_name:
        raise ConfigurationError(
            f"Expected logdir {study.logdir} to hold only the trial folders of study "
            f"{study.study_name!r} (created {mine['created']}). Received: a logdir written by "
            f"another study of the same name (created {owner.get('created')}): one in "
            f"memory that a re-run replaced (a notebook cell run again with storage="
            f"':memory:'), a study deleted and created again, or one of that name in another "
            f"storage. Use a storage that keeps the study (the default SQLite file: a re-run "
            f"then resumes it), pass another logdir=, or delete {base} if its files are no "
            f"longer needed.")
    if study.logdir is not None:
        raise ConfigurationError(
            f"Expected logdir {study.logdir} to hold only the trial folders of study "
            f"{study.study_name!r} (created {mine['created']}). Received: a logdir that "
            f"belongs to study {owner.get('study')!r} (created {owner.get('created')}, "
            f"recorded in {os.path.join(base, MARKER)}); trial folders are named by number, so "
            f"the two studies would overwrite each other's files. Pass another logdir= for "
            f"this study, or delete {base} if the other study's files are no longer needed "
            f"(deleting a study from its storage leaves its folders in place).")
    other = _fit_components(f"{base}-{_stamp(mine['created'])}")  # a long name: still <= 255
    _warn_once(study, base, owner, other)
    return other


def claim_root(study: Study) -> str:
    """:func:`resolve_root`, recording ``study`` as the owner of a root nobody owns yet (call
    it before making a trial folder there). Two studies that claim one free root at once:
    the marker is created exclusively, so one wins and the other moves aside."""
    root = resolve_root(study)
    if read_owner(root) is None:
        os.makedirs(root, exist_ok=True)
        _write_once(root, _identity(study))
        root = resolve_root(study)
    return root


def _base(study: Study) -> str:
    return study.logdir or os.path.join("hpo_runs", folder_name(study.study_name))


def folder_name(name: str) -> str:
    """The folder under ``hpo_runs`` of a study named ``name``: the name itself, as always,
    unless it leads out of ``hpo_runs`` or onto it (an absolute path, a drive, ``..`` beyond
    its start, ``.`` or an empty name), where every ``/`` is replaced, so the folder stays
    one level inside. A name with ``/`` inside (``resnet/lr``) keeps its nested folders.

    Example:
        >>> [folder_name(n) for n in ("resnet", "resnet/lr", "a/../b", "../../x", "/tmp/s",
        ...                           "..", "")]
        ['resnet', 'resnet/lr', 'a/../b', '_.._.._x', '_tmp_s', '_..', '_']
    """
    flat = name.replace("\\", "/") if os.name == "nt" else name  # a separator on Windows only
    inside = os.path.normpath(flat) if flat else "."
    if (not os.path.isabs(flat) and not os.path.splitdrive(name)[0] and inside != "."
            and inside != ".." and not inside.startswith("../")):
        return _fit_components(name)
    return _fit_components("_" + flat.replace("/", "_").lstrip("_"))


#: The longest folder name most file systems take (ext4, APFS: 255 bytes; NTFS: 255 UTF-16
#: units).
_NAME_MAX = 255
#: What a longer one is cut to, leaving room for the ``-<creation time>`` of a taken root.
_CUT_TO = 200
#: What separates the folders of a path: ``/``, and on Windows ``\\`` too.
_SEPARATORS = re.compile(r"([\\/])" if os.name == "nt" else r"(/)")


def _fit_components(path: str) -> str:
    """``path`` with each folder name longer than :data:`_NAME_MAX` cut short and given a
    hash of the whole name, so a study with a very long name (say one made of its
    parameters) still gets folders, and two long names that share a beginning get different
    ones. Shorter names are kept as they are: their folders do not move.

    Example:
        >>> folder = _fit_components("a/" + "x" * 300)
        >>> folder.split("/")[0], len(folder.split("/")[1]), folder.split("~")[1]
        ('a', 200, '0d4e2ca9e9cb')
    """
    pieces = _SEPARATORS.split(path)  # names at even places, separators between them
    for index in range(0, len(pieces), 2):
        part = pieces[index]
        if _size(part) > _NAME_MAX:
            digest = hashlib.sha256(part.encode("utf-8", "surrogatepass")).hexdigest()[:12]
            room = _CUT_TO - len(digest) - 1
            keep = part[:room]
            while _size(keep) > room:
                keep = keep[:-1]
            pieces[index] = f"{keep}~{digest}"
    return "".join(pieces)


def _size(name: str) -> int:
    """The length of a folder name as the file system counts it: bytes, or UTF-16 units on
    Windows."""
    if os.name == "nt":
        return len(name.encode("utf-16-le", "surrogatepass")) // 2
    return len(os.fsencode(name))


_identities: weakref.WeakKeyDictionary[Study, dict[str, Any]] = weakref.WeakKeyDictionary()


def _identity(study: Study) -> dict[str, Any]:
    """What tells two studies of one name apart: the creation time, kept by a copy (read
    from the storage once per Study object)."""
    identity = _identities.get(study)
    if identity is None:
        created = study.storage.get_study(study.study_id).datetime_created
        identity = _identities[study] = {
            "study": study.study_name,
            "created": created.isoformat() if created is not None else None}
    return identity


def read_owner(root: str) -> dict[str, Any] | None:
    """The study recorded as the owner of ``root`` (``{"study": name, "created": ISO time}``),
    or None when there is none (no trial folder made yet, or an older study). A marker that
    does not parse yet (one written where hard links are missing, seen half-written) is read
    again for up to a second before it counts as none."""
    path = os.path.join(root, MARKER)
    for _ in range(20):
        try:
            with open(path, encoding="utf-8") as handle:
                owner = json.load(handle)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            time.sleep(0.05)
            continue
        return owner if isinstance(owner, dict) else None
    return None


def _write_once(root: str, identity: dict[str, Any]) -> None:
    """Create the marker with ``identity`` unless it exists: written to a temporary file of
    its own (unique per call, so threads of one process never share one) and hard-linked into
    place, so a reader sees all of it or nothing."""
    path = os.path.join(root, MARKER)
    handle, tmp = tempfile.mkstemp(dir=root, prefix=".hpo_plugins_study.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(identity, stream)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        except OSError:  # no hard links here: an exclusive create instead
            with contextlib.suppress(FileExistsError), open(path, "x", encoding="utf-8") as out:
                json.dump(identity, out)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _stamp(created: str | None) -> str:
    """A folder-name suffix from an ISO creation time: ``20261127-194628-123456``."""
    if created is None:
        return "unknown"
    return created.split("+")[0].replace("-", "").replace(":", "").replace("T", "-").replace(
        ".", "-")


_warned: set[tuple[str, str]] = set()


def _warn_once(study: Study, base: str, owner: dict[str, Any], other: str) -> None:
    key = (os.path.abspath(base), os.path.abspath(other))
    if key in _warned:
        return
    _warned.add(key)
    _logger.warning("%s holds the trial folders of another study named %r (created %s); the "
                    "trial folders of study %r go to %s instead. Pass logdir= to choose the "
                    "folder.", base, owner.get("study"), owner.get("created"),
                    study.study_name, other)
