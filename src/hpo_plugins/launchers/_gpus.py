"""Finding GPUs without importing a framework, and the slots trials run in."""

from __future__ import annotations

import logging
import numbers
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from typing import Literal

from hpo_plugins._warn import warn_user
from hpo_plugins.exceptions import ConfigurationError

__all__ = ["detect_gpus", "gpu_slots", "needs_gpus", "parse_gpus"]

_logger = logging.getLogger(__name__)
_GPU_ID = re.compile(r"[0-9]+|(?:GPU|MIG)-[^\s,]+")  # an index or a UUID, as CUDA takes them


def detect_gpus() -> list[str]:
    """GPU ids this process may use: ``CUDA_VISIBLE_DEVICES`` if set, else ``nvidia-smi``.

    Never imports torch or TensorFlow (either would initialise CUDA in the launcher).
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return _visible_ids(visible)
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, "--query-gpu=index", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        _logger.warning("nvidia-smi failed (%s); running without GPUs.", exc)
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def _visible_ids(visible: str) -> list[str]:
    """The devices ``CUDA_VISIBLE_DEVICES`` makes visible, read as CUDA reads it.

    CUDA takes the ids up to the first invalid one and ignores the rest, so ``"0,-1,2"`` shows
    only device 0 and ``"-1"`` none. A valid id is an index or a ``GPU-``/``MIG-`` UUID.

    Example:
        >>> _visible_ids("0,-1,2"), _visible_ids(" 1, 0 "), _visible_ids("")
        (['0'], ['1', '0'], [])
    """
    ids = []
    for entry in (e.strip() for e in visible.split(",")):
        if not _GPU_ID.fullmatch(entry):
            break
        ids.append(entry)
    return ids


def gpu_slots(gpus: str | Sequence[int | str] | None, trials_per_gpu: int, *,
              cpu_workers: int | None = None) -> list[str]:
    """One entry per concurrent trial: each GPU id repeated ``trials_per_gpu`` times.

    Args:
        gpus: ``"all"`` (detect), a list of ids or a comma-separated string of them, or None
            (no GPU pool); see :func:`parse_gpus`.
        trials_per_gpu: How many trials share one GPU at once (numpy integers too, as
            elsewhere; ``bool`` is refused, ``True`` is no count).
        cpu_workers: The CPU workers that run the trials when no GPU is found (the
            launcher's ``n_jobs``), for the notice; None: not said.

    Raises:
        ConfigurationError: Bad ``gpus`` or ``trials_per_gpu``.
    """
    if isinstance(trials_per_gpu, bool) or not isinstance(trials_per_gpu, numbers.Integral) or (
            trials_per_gpu < 1):
        fraction = (isinstance(trials_per_gpu, numbers.Real) and not isinstance(
            trials_per_gpu, bool) and 0 < trials_per_gpu < 1)
        raise ConfigurationError(
            f"Expected `trials_per_gpu` to be an integer >= 1. Received: "
            f"trials_per_gpu={trials_per_gpu!r}." + (
                f" A share of a GPU per trial (Ray Tune's resources_per_trial={{'gpu': "
                f"{trials_per_gpu!r}}}) is written here as trials per GPU: "
                f"trials_per_gpu={round(1 / float(trials_per_gpu))}." if fraction else "")
        )
    trials_per_gpu = int(trials_per_gpu)
    parsed = parse_gpus(gpus)
    if parsed is None:
        return []
    if isinstance(parsed, list):
        ids = parsed
        _warn_unknown(ids)
    else:
        ids = detect_gpus()
    if not ids:
        warn_user("No GPU found: trials run on CPU" + (
            "." if cpu_workers is None else
            f", {_workers_text(cpu_workers)} (n_jobs={cpu_workers}, --n-jobs"
            + ("; trials_per_gpu applies to GPUs only" if trials_per_gpu > 1 else "") + ")."),
            RuntimeWarning)
    return [gpu for gpu in ids for _ in range(trials_per_gpu)]


def parse_gpus(gpus: object) -> Literal["all"] | list[str] | None:
    """``gpus`` as the launcher reads it: None (no GPU pool), ``"all"``, or the ids as strings.

    A GPU id is a non-negative integer, a string of digits, or a GPU UUID (``GPU-...``,
    ``MIG-...``): what ``CUDA_VISIBLE_DEVICES`` takes. A string other than ``"all"`` is read in
    that variable's syntax, ids separated by commas (``"0,1"``, ``"2"``), but strictly: a bad id
    is an error, not the end of the list. ``"all"`` is lower case only, as the CLI reads it. A
    bare integer is refused, since ``gpus=2`` may mean GPU 2 or two GPUs; so are an empty list
    (``None`` means no GPU pool) and an id listed twice (``trials_per_gpu`` shares a GPU).

    Example:
        >>> parse_gpus([0, "2"]), parse_gpus(" 1, 3"), parse_gpus("all")
        (['0', '2'], ['1', '3'], 'all')

    Raises:
        ConfigurationError: Anything else; the message names what came in and how to fix it.
    """
    if gpus is None:
        return None
    if isinstance(gpus, str):
        if gpus == "all":
            return "all"
        entries: list[object] = list(gpus.split(","))
    elif isinstance(gpus, (list, tuple)):
        entries = list(gpus)
    elif isinstance(gpus, numbers.Integral) and not isinstance(gpus, bool):
        raise _bad_gpus(gpus, 'a bare integer is ambiguous (a GPU id, or a number of GPUs?): '
                              'pass gpus=[0] for GPU 0, or gpus="all" for every GPU')
    else:
        raise _bad_gpus(gpus, 'pass a list of ids such as gpus=[0, 1], or gpus="all"')
    ids = []
    for entry in entries:
        gpu = _gpu_id(entry)
        if gpu is None:
            raise _bad_gpus(gpus, _not_an_id(entry))
        if gpu in ids:
            raise _bad_gpus(gpus, f"GPU {gpu} is listed twice, and each id is one GPU: to run "
                                  f"several trials on one GPU at once, list it once and pass "
                                  f"trials_per_gpu=2")
        ids.append(gpu)
    if not ids:
        raise _bad_gpus(gpus, 'an empty list names no GPU: pass gpus=None for CPU workers, '
                              'or gpus="all" for every GPU this machine has')
    return ids


def needs_gpus(trials_per_gpu: str, gpus: str) -> str:
    """The refusal of ``trials_per_gpu`` without ``gpus``, with the names the caller uses
    (``JoblibLauncher`` its arguments, ``hpo-plugins run`` its flags)."""
    return f"{trials_per_gpu} needs {gpus} (the GPUs whose slots it fills)"


def _gpu_id(entry: object) -> str | None:
    """``entry`` as a GPU id string, or None if it is not one (a bool is not an index)."""
    if isinstance(entry, numbers.Integral) and not isinstance(entry, bool):
        return str(int(entry)) if int(entry) >= 0 else None
    if isinstance(entry, str) and _GPU_ID.fullmatch(entry.strip()):
        return entry.strip()
    return None


def _not_an_id(entry: object) -> str:
    if isinstance(entry, str) and entry.strip().lower() == "all":  # "ALL", or --gpus ALL
        return 'for every GPU pass gpus="all" (lower case, alone)'
    return (f'{entry!r} is not a GPU id: ids are non-negative integers, strings of digits or '
            f'GPU UUIDs ("GPU-...", "MIG-..."), as `nvidia-smi -L` lists them')


def _bad_gpus(gpus: object, why: str) -> ConfigurationError:
    return ConfigurationError(
        f'Expected `gpus` to be "all", a list of GPU ids such as [0, 1], a comma-separated '
        f'string of ids such as "0,1", or None. Received: gpus={gpus!r} (of type '
        f"{type(gpus).__name__}); {why}."
    )


def _warn_unknown(ids: list[str]) -> None:
    """Warn about listed ids that this machine does not show (a trial there would see no GPU).

    Only a warning: ids may be UUIDs or MIG names, which the detection does not list.
    """
    found = detect_gpus()
    unknown = [gpu for gpu in ids if gpu not in found]
    if not (found and unknown):
        return
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:  # a trial's own CUDA_VISIBLE_DEVICES replaces this one
        _logger.warning(
            "GPU ids %s are not among the GPUs this process may use, %s "
            "(CUDA_VISIBLE_DEVICES=%s): a trial pinned to one gets CUDA_VISIBLE_DEVICES set "
            "to it, which names the machine's GPU of that id, outside that set (on a shared "
            "machine, another user's), or none if the machine lacks it. Pass ids from that "
            "list (the machine's ids, as nvidia-smi numbers them), or gpus=\"all\".",
            unknown, found, visible)
    else:
        _logger.warning("GPU ids %s are not among this machine's GPUs %s: trials pinned to "
                        "them see no GPU. Pass ids from that list, or gpus=\"all\".",
                        unknown, found)


def _workers_text(n_jobs: int) -> str:
    """How many CPU workers ``n_jobs`` gives, in words."""
    if n_jobs == -1:
        return "one worker per core"
    return "one at a time" if n_jobs == 1 else f"{n_jobs} at a time"
