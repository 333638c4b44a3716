"""One ``optimize`` call's options, checked before any trial: limits, ``catch``, callbacks."""

from __future__ import annotations

import numbers
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpo_plugins._frozen import (
    FrozenTrial,
)
from hpo_plugins._numbers import optional_count
from hpo_plugins._signature import two_argument_problem
from hpo_plugins.exceptions import (
    ConfigurationError,
)

if TYPE_CHECKING:
    from hpo_plugins.study import Study


__all__ = ["RunSettings"]


@dataclass(frozen=True)
class RunSettings:
    """Validated options of one ``optimize`` call (picklable, so launchers can ship it)."""

    n_trials: int | None
    max_trials: int | None
    timeout: float | None
    catch: tuple[type[BaseException], ...]
    callbacks: tuple[Callable[[Study, FrozenTrial], None], ...]
    show_progress_bar: bool

    @classmethod
    def build(cls, study: Study, *, n_trials: int | None, max_trials: int | None,
              timeout: float | None,
              catch: Iterable[type[BaseException]] | type[BaseException],
              callbacks: Sequence[Callable[[Study, FrozenTrial], None]] | None,
              show_progress_bar: bool | None) -> RunSettings:
        """Check every option; raise ConfigurationError with the fix when one is wrong."""
        finite = study.space is not None and study.sampler.finite
        return cls.check(n_trials=n_trials, max_trials=max_trials, timeout=timeout, catch=catch,
                         callbacks=callbacks, show_progress_bar=show_progress_bar,
                         finite=finite)

    @classmethod
    def check(cls, *, n_trials: Any, max_trials: Any, timeout: Any, catch: Any, callbacks: Any,
              show_progress_bar: Any, finite: bool) -> RunSettings:
        """:meth:`build` without a study: ``finite`` says whether the sampler can run out
        (then no limit is needed). ``hpo.minimize`` calls it before it creates the study, so
        bad options store nothing."""
        n_trials = optional_count("n_trials", n_trials)
        max_trials = optional_count("max_trials", max_trials)
        if timeout is not None and (isinstance(timeout, bool)
                                    or not isinstance(timeout, numbers.Real)
                                    or not float(timeout) > 0):
            raise ConfigurationError(
                f"Expected `timeout` to be a number of seconds > 0 or None. Received: "
                f"timeout={timeout!r}."
            )
        if n_trials is None and max_trials is None and timeout is None and not finite:
            raise ConfigurationError(
                "Expected a limit: pass n_trials= (trials to run now), max_trials= (the study's "
                "total) or timeout= (seconds). Received none, so the study would never stop."
            )
        if show_progress_bar is not None and not isinstance(show_progress_bar, bool):
            raise ConfigurationError(
                f"Expected `show_progress_bar` to be True, False or None (on in a notebook "
                f"and when stderr is a terminal). Received: "
                f"show_progress_bar={show_progress_bar!r}."
            )
        return cls(n_trials, max_trials, None if timeout is None else float(timeout),
                   _catch_tuple(catch), _callback_tuple(callbacks),
                   _bar_by_default() if show_progress_bar is None else show_progress_bar)

    @property
    def budget(self) -> int | None:
        """Most trials this call may start: ``n_trials`` (``max_trials`` is enforced by the
        storage), or ``max_trials`` when only it is given, for the progress bar's total."""
        return self.n_trials if self.n_trials is not None else self.max_trials

    def should_stop(self, started: int, failed: int, elapsed: float) -> bool:
        """Whether a call that started and failed that many trials must start no more.

        Without ``n_trials`` a call runs until the storage says the study is full; failed trials
        do not count toward ``max_trials``, so a call also stops after ``max_trials`` failures,
        and an objective that always fails cannot loop forever.
        """
        if self.timeout is not None and elapsed >= self.timeout:
            return True
        if self.n_trials is not None:
            return started >= self.n_trials
        return self.max_trials is not None and failed >= self.max_trials


def _catch_tuple(catch: Iterable[type[BaseException]] | type[BaseException]
                 ) -> tuple[type[BaseException], ...]:
    if catch is None:
        return ()
    if isinstance(catch, str):  # iterated, it would be refused letter by letter
        raise ConfigurationError(
            f"Expected `catch` to be an exception class or a tuple of them, such as "
            f"catch=(ValueError, RuntimeError). Received the text catch={catch!r}: pass the "
            f"class itself, without quotes.")
    try:
        items = (catch,) if isinstance(catch, type) else tuple(catch)
    except TypeError:  # not iterable, e.g. an exception instance
        items = (catch,)  # type: ignore[assignment]
    for item in items:
        if not (isinstance(item, type) and issubclass(item, BaseException)):
            raise ConfigurationError(
                f"Expected `catch` to be an exception class or a tuple of them, such as "
                f"catch=(ValueError, RuntimeError). Received: {item!r}."
            )
    return items


def _callback_tuple(callbacks: Sequence[Callable[[Study, FrozenTrial], None]] | None
                    ) -> tuple[Callable[[Study, FrozenTrial], None], ...]:
    if callbacks is None:
        return ()
    if callable(callbacks) or isinstance(callbacks, (str, bytes)):
        raise ConfigurationError(
            f"Expected `callbacks` to be a list of functions fn(study, frozen_trial). Received "
            f"{callbacks!r} itself; wrap it in a list: callbacks=[...]."
        )
    items = tuple(callbacks)
    for item in items:
        _check_callback(item)
    return items


def _check_callback(callback: Any) -> None:
    """Refuse, before any trial, a callback that cannot be called as ``callback(study,
    frozen_trial)``: not callable, or of another signature (``lambda t: ...``). A callable
    whose signature Python cannot read is let through."""
    if not callable(callback):
        raise ConfigurationError(
            f"Expected `callbacks` to hold functions fn(study, frozen_trial). Received: "
            f"{callback!r} (a {type(callback).__name__})."
        )
    if (getattr(callback, "__module__", None) or "").startswith("hyperopt."):
        raise ConfigurationError(
            f"Expected each of `callbacks` to be a function fn(study, frozen_trial). Received "
            f"Hyperopt's {getattr(callback, '__qualname__', callback)!r}, which takes Hyperopt's "
            f"Trials object (an early_stop_fn). Use a stopper of hpo_plugins.stoppers, e.g. "
            f"callbacks=[NoImprovementStop(20)] for no_progress_loss(20), or "
            f"ThresholdStop(0.1) for loss_threshold=0.1; or write a callback that calls "
            f"study.stop().")
    problem = two_argument_problem(callback)
    if problem is not None:
        raise ConfigurationError(
            f"Expected each of `callbacks` to be callable with two arguments, "
            f"fn(study, frozen_trial), called after each trial. Received: {problem}. Accept "
            f"both, e.g. `lambda study, trial: ...`, or bind other arguments with "
            f"functools.partial."
        )


def _bar_by_default() -> bool:
    """A progress bar when stderr is a terminal, or in a notebook (tqdm shows a widget there;
    a kernel's stderr is no terminal, and a long cell printed nothing)."""
    from hpo_plugins._interactive import in_notebook

    return sys.stderr.isatty() or in_notebook()
