"""Finding GPUs without importing a framework, and the slots trials run in."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import warnings
from collections.abc import Sequence

from hpo_plugins.exceptions import ConfigurationError

__all__ = ["detect_gpus", "gpu_slots"]

_logger = logging.getLogger(__name__)


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
        if not (entry.isdigit() or entry.startswith(("GPU-", "MIG-"))):
            break
        ids.append(entry)
    return ids


def gpu_slots(gpus: str | Sequence[int | str] | None, trials_per_gpu: int) -> list[str]:
    """One entry per concurrent trial: each GPU id repeated ``trials_per_gpu`` times.

    Args:
        gpus: ``"all"`` (detect), a list of ids, or None (no GPU pool).
        trials_per_gpu: How many trials share one GPU at once.

    Raises:
        ConfigurationError: Bad ``gpus`` or ``trials_per_gpu``.
    """
    if isinstance(trials_per_gpu, bool) or not isinstance(trials_per_gpu, int) or (
            trials_per_gpu < 1):
        raise ConfigurationError(
            f"Expected `trials_per_gpu` to be an integer >= 1. Received: "
            f"trials_per_gpu={trials_per_gpu!r}."
        )
    if gpus is None:
        return []
    if gpus == "all":
        ids = detect_gpus()
    elif isinstance(gpus, (list, tuple)) and all(isinstance(g, (int, str)) for g in gpus):
        ids = [str(g) for g in gpus]
        _warn_unknown(ids)
    else:
        raise ConfigurationError(
            f'Expected `gpus` to be "all", a list of GPU ids or None. Received: gpus={gpus!r}.'
        )
    if not ids:
        warnings.warn("No GPU found: trials run on CPU.", RuntimeWarning, stacklevel=3)
    return [gpu for gpu in ids for _ in range(trials_per_gpu)]


def _warn_unknown(ids: list[str]) -> None:
    """Warn about listed ids that this machine does not show (a trial there would see no GPU).

    Only a warning: ids may be UUIDs or MIG names, which the detection does not list.
    """
    found = detect_gpus()
    unknown = [gpu for gpu in ids if gpu not in found]
    if found and unknown:
        _logger.warning("GPU ids %s are not among this machine's GPUs %s: trials pinned to them "
                        "see no GPU. Pass ids from that list, or gpus=\"all\".", unknown, found)
