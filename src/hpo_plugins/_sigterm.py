"""Telling that SIGTERM stopped the process (preemption, ``kill``, ``docker stop``), in
whatever form it arrived, and naming it in a trial's reason."""

from __future__ import annotations

import signal

__all__ = ["INTERRUPTED_BY_USER", "STOPS_THE_RUN", "exception_text", "exit_as_sigterm",
           "sigterm_reason", "stopped_by_sigterm", "stopped_from_outside"]
#: How the reason of a trial that Ctrl-C stopped begins, wherever it was stopped.
INTERRUPTED_BY_USER = "interrupted by the user"
#: What the reason of a trial that SIGTERM or SIGHUP stopped says of it (:func:`sigterm_reason`).
_COUNTED_AS_LOST = "counted as lost, like a trial whose worker died"
#: The attribute, True, of a signal handler that stops the run by raising (the CLI's SIGTERM
#: and SIGHUP one): a parallel run wraps only such handlers, and Python's default Ctrl-C one,
#: to give the workers' script-mode commands their grace first. A handler that returns (a
#: user's "stop after this trial" flag) would leave the frozen workers waited on for ever.
STOPS_THE_RUN = "hpo_plugins_stops_the_run"
#: The exceptions that mean "this process got SIGTERM", by module and name: Lightning's (its
#: training loop raises it once its own handler saw the signal) and the command line's
#: (``hpo_plugins.cli``, which the core must not import). See :func:`stopped_by_sigterm`.
_SIGTERM_EXCEPTIONS = frozenset({
    "lightning.pytorch.utilities.exceptions.SIGTERMException",
    "pytorch_lightning.utilities.exceptions.SIGTERMException",
    "hpo_plugins.cli._base.Terminated",
})


def stopped_by_sigterm(kind: type[BaseException]) -> bool:
    """Whether an exception of type ``kind`` means that the process got SIGTERM.

    SIGTERM is how a machine is taken away (preemption, a Kubernetes eviction, Slurm,
    ``docker stop``, a plain ``kill``): the trial it stops was lost, not given up by the user,
    so it is re-queued like a trial whose worker died (see :func:`sigterm_reason`). The
    exceptions are known by name (:data:`_SIGTERM_EXCEPTIONS`), so neither Lightning nor the
    command line is imported; a subclass of one counts too.
    """
    return any(f"{cls.__module__}.{cls.__qualname__}" in _SIGTERM_EXCEPTIONS
               for cls in kind.__mro__)


def exception_text(kind: type[BaseException], exc: object = None) -> str:
    """``Name(message)``, or ``Name`` for an exception without a message: how stop reasons
    name what stopped a run, in the run loop and in the launchers alike."""
    return f"{kind.__name__}({exc})" if exc is not None and str(exc) else kind.__name__


def sigterm_reason(exc: BaseException | None, kind: type[BaseException]) -> str:
    """The reason of a trial stopped by SIGTERM (:func:`stopped_by_sigterm`), the same in a
    sequential run and in a parallel one (whose launcher fails its running trials)."""
    name = "SIGTERM"  # the CLI's Terminated names its signal: SIGTERM, or SIGHUP
    if kind.__name__ == "Terminated" and exc is not None and exc.args:
        name = str(exc.args[0]) if str(exc.args[0]).startswith("SIG") else name
    return f"stopped by {name} ({exception_text(kind, exc)}): {_COUNTED_AS_LOST}"


def exit_as_sigterm(exc: BaseException) -> None:
    """Give a ``SystemExit`` without a code (Lightning's ``SIGTERMException``) the status of a
    process ended by SIGTERM, 143: a job runner (Kubernetes, systemd, a retry loop) that reads
    status 0 as success would never start the run that retries the lost trial."""
    if isinstance(exc, SystemExit) and exc.code is None:
        exc.code = 128 + signal.SIGTERM


def stopped_from_outside(reason: str | None) -> bool:
    """Whether a FAIL trial's ``reason`` says the run was stopped around it (Ctrl-C, or
    SIGTERM/SIGHUP: see :func:`sigterm_reason`), rather than that the trial itself failed.
    Such a trial says nothing about the set-up, so a streak of failures skips it
    (:class:`~hpo_plugins.stoppers.FailureStop`)."""
    text = reason or ""
    return text.startswith(INTERRUPTED_BY_USER) or (
        text.startswith("stopped by SIG") and text.endswith(_COUNTED_AS_LOST))
