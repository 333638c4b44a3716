"""The launcher contract, and the sequential launcher."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpo_plugins._run_settings import RunSettings
    from hpo_plugins.storages import Storage
    from hpo_plugins.study import Study

__all__ = ["Launcher", "SequentialLauncher"]


class Launcher(abc.ABC):
    """Runs the trials of one ``optimize`` call somewhere: here, in worker processes, on a cluster.

    A launcher owns no loop logic of its own beyond scheduling: every worker runs
    :func:`hpo_plugins.launchers.run_one` (ask → objective → tell against the shared storage), so a
    trial behaves the same whichever launcher runs it. ``run`` returns when the limits in
    ``settings`` are reached (``settings.should_stop``; ``run_one`` returns None when the study
    has nothing left; ``study.stop_requested``), and calls ``settings.callbacks`` in the calling
    process.

    ``hpo.minimize`` and ``hpo.maximize`` call :meth:`check` with the resolved storage before
    they create (or resume) the study, then ``run``. ``Study.optimize`` on an existing study
    calls ``run`` only, so ``run`` must make the same checks itself.
    """

    def check(self, storage: Storage) -> None:  # noqa: B027 - optional hook
        """Refuse, before any study exists in ``storage``, a run this launcher cannot do.

        Raise the error ``run`` would raise for this storage (an in-memory storage that worker
        processes cannot share, a cluster that cannot hold a trial...), so that a refused
        ``hpo.minimize`` leaves no empty study behind in a database. It must store nothing.
        The default accepts every storage.

        Raises:
            ConfigurationError: What the launcher needs, what it got and the fix.
        """

    @abc.abstractmethod
    def run(self, study: Study, objective: Callable[..., Any], settings: RunSettings) -> None:
        """Run trials until a limit in ``settings`` is reached."""


class SequentialLauncher(Launcher):
    """One trial after another in this process (what ``n_jobs=1`` does)."""

    def run(self, study: Study, objective: Callable[..., Any], settings: RunSettings) -> None:
        """Loop ``run_one`` in this process."""
        from hpo_plugins._optimize import run_sequential

        run_sequential(study, objective, settings)
