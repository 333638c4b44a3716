"""A short pause that keeps torch's gloo threads from aborting a rank as it exits.

After a collective, one of the gloo process group's worker threads still holds the operation
for a moment, and the tensors in it. When the Python side has already dropped those tensors
(``broadcast_object_list``, under ``trainer.strategy.broadcast``, drops them as it returns),
that thread must take the GIL to free them. A rank that ``ddp_spawn`` started exits about a
millisecond after the callback's last broadcast (the verdict of the last validation); if the
interpreter is finalizing by the time the thread asks for the GIL, CPython ends the thread
inside a C++ destructor and the process dies with "terminate called without an active
exception" (SIGABRT). The trial then fails although every rank finished ``fit``. On a 2-core
machine that was about one trial in four.

Sleeping releases the GIL, so the thread frees the tensors while the interpreter still runs.
Only gloo process groups of two or more ranks pause: NCCL's threads do not free Python
objects this way, and Lightning destroys NCCL groups at exit.
"""

from __future__ import annotations

import sys
import time

__all__ = ["SETTLE_SECONDS", "settle_collectives"]

SETTLE_SECONDS = 0.05  # enough for a runnable thread to be scheduled on a busy 2-core machine


def settle_collectives() -> bool:
    """Pause ``SETTLE_SECONDS`` when this process is a rank of a gloo group of 2 or more.

    Called by every rank after its last broadcast of a ``fit`` (``teardown``, or before the
    refusal it raises). Returns whether it paused. torch is looked up, not imported: a process
    that never imported ``torch.distributed`` has no group to wait for.
    """
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available() or not dist.is_initialized():
        return False
    if dist.get_backend() != "gloo" or dist.get_world_size() < 2:
        return False
    time.sleep(SETTLE_SECONDS)
    return True
