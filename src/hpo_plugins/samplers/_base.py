"""The sampler contract: a pure function of (space, history snapshot, rng) -> parameters."""

from __future__ import annotations

import abc
import inspect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hpo_plugins._frozen import DIVERGED_ATTR, Direction, FrozenTrial, TrialState
from hpo_plugins._text import short_repr
from hpo_plugins.exceptions import ForeignArgumentError
from hpo_plugins.space import SearchSpace

__all__ = ["History", "Sampler", "constructor_params", "describe_object", "diverged",
           "is_description", "ranked_for_model"]


@dataclass(frozen=True)
class History:
    """What a sampler may know when it proposes the next trial.

    Attributes:
        trials: Every other trial of the study, by number, in any state: COMPLETE, PRUNED and
            FAIL ones, RUNNING ones (their params are set, their value is not), and WAITING ones
            (enqueued). The trial being sampled is not included.
        direction: Whether lower or higher values are better.
        number: The number of the trial being sampled.
    """

    trials: Sequence[FrozenTrial]
    direction: Direction
    number: int = 0

    def in_states(self, *states: TrialState) -> list[FrozenTrial]:
        """Trials in any of ``states``, by number."""
        return [t for t in self.trials if t.state in states]

    @property
    def n_finished(self) -> int:
        """The trials a model learns from (see :func:`ranked_for_model`): COMPLETE, PRUNED and
        diverged FAIL ones. What counts toward a sampler's start-up phase: a region that
        diverges would otherwise keep the start-up's random draws going."""
        return sum(1 for t in self.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)
                   or diverged(t))


class Sampler(abc.ABC):
    """Base class of every sampler.

    A sampler proposes the flat internal parameters of the next trial (``label -> value``, only
    active labels, a choice as the index of its option; see :mod:`hpo_plugins.space`). It must be
    a *pure* function of its arguments: it reads no storage, keeps no state between calls that
    changes its answers, and draws every random number from ``rng``. The :class:`~hpo_plugins.Study`
    gives each trial an ``rng`` derived from (study seed, trial number), so a seeded study is
    reproducible whichever worker runs which trial.

    Class attributes:
        deduplicate: When True the study never lets two trials hold the same parameters: it stores
            a key per trial and asks again (with a fresher history) if another worker took the
            same configuration first. Samplers of finite spaces (the grid) set it.
        finite: True when the sampler can run out of configurations and raise
            :class:`~hpo_plugins.exceptions.SearchSpaceExhausted`; a study may then run without a
            trial limit. A finite sampler that never proposes a configuration twice should
            also set ``deduplicate`` (as the grid does): its trials are then stored after
            sampling, so running out leaves no trial behind, and parallel workers never run
            one configuration twice. Without it, a trial is started before each sampling, and
            running out fails that trial ("the sampler had nothing new to propose").
        uses_history: False when :meth:`sample` never reads ``history.trials``: the study then
            skips the snapshot of the storage and passes an empty history (its ``number`` and
            ``direction`` are still set).

    Constructors only store their keyword arguments under the same names (scikit-learn's rule),
    so :meth:`get_params` and :func:`describe_object` can record which algorithm ran a study.
    """

    deduplicate: bool = False
    finite: bool = False
    uses_history: bool = True

    def __new__(cls, *args: Any, **kwargs: Any) -> Sampler:
        """Refuse ``seed=`` with the fix, for a sampler that takes none (Optuna's samplers do,
        so ``TPESampler(seed=0)`` is a reflex): the seed belongs to the study. Hyperopt's names
        (``n_startup_jobs``) and positional options get the fix too
        (:func:`~hpo_plugins._ported.check_constructor_call`)."""
        from hpo_plugins._ported import SAMPLER_ARGUMENTS, check_constructor_call

        if "seed" in kwargs and not _accepts(cls, "seed"):
            raise ForeignArgumentError(
                f"Expected no `seed` in {cls.__name__}(...): samplers here take no seed. "
                f"Received: seed={kwargs['seed']!r}. Seed the study instead, e.g. "
                f"hpo.create_study(space, seed={kwargs['seed']!r}, sampler={cls.__name__}()) or "
                f"hpo.minimize(..., seed={kwargs['seed']!r}): each trial then draws from its own "
                f"stream derived from (seed, trial number), whichever worker runs it.")
        check_constructor_call(cls, args, kwargs, SAMPLER_ARGUMENTS,
                               whose="Hyperopt's or Keras Tuner's")
        return super().__new__(cls)

    @abc.abstractmethod
    def sample(self, space: SearchSpace, history: History,
               rng: np.random.Generator) -> dict[str, Any]:
        """Propose flat internal parameters for trial ``history.number``.

        Raises:
            SearchSpaceExhausted: Nothing new is left to propose.
        """

    def check_space(self, space: SearchSpace) -> None:  # noqa: B027 - optional hook
        """Raise :class:`~hpo_plugins.exceptions.SpaceError` if this sampler cannot handle
        ``space``. Called once, at study creation, so bad spaces fail early."""

    def get_params(self) -> dict[str, Any]:
        """The constructor's keyword arguments, read back from attributes of the same names."""
        return constructor_params(self)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


def _constructor_names(obj: object) -> list[str]:
    """The named constructor arguments of ``obj``'s class (not ``*args``/``**kwargs``)."""
    signature = inspect.signature(type(obj).__init__).parameters.values()
    return [p.name for p in signature if p.name != "self"
            and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _takes_var_arguments(obj: object) -> bool:
    """Whether ``obj``'s constructor takes ``*args`` or ``**kwargs`` (whatever they carried is
    not among the named arguments, so the object cannot be rebuilt from them).

    A class without an ``__init__`` of its own (``NopPruner``) has ``object.__init__``, whose
    signature reads ``(self, /, *args, **kwargs)`` but which takes nothing: such an object is
    rebuilt exactly by ``Class()``.
    """
    if type(obj).__init__ is object.__init__:
        return False
    signature = inspect.signature(type(obj).__init__).parameters.values()
    return any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in signature)


def constructor_params(obj: object) -> dict[str, Any]:
    """The constructor arguments ``obj`` keeps under their own names (scikit-learn's rule),
    for :func:`describe_object` to record samplers and pruners."""
    return {n: getattr(obj, n) for n in _constructor_names(obj) if hasattr(obj, n)}


def describe_object(obj: object) -> dict[str, Any]:
    """``{"class": "module.Class", "params": {...}, "exact": bool}`` with JSON-able parameters
    (a wrapped sampler or pruner, e.g. ``PatientPruner``'s, as its own description; numpy
    scalars as Python numbers; lists, tuples and dicts of JSON values as JSON, a tuple as a
    list; anything else as its repr).

    Used to record a study's sampler and pruner and to rebuild them (the pruner in child
    processes, both on a resume). ``exact`` is True when ``Class(**params)`` gives the same
    object: every named constructor argument was read back and none had to be written as a
    repr (:func:`inexact_reasons` says which ones were not).
    """
    return _record(obj, *_describe_params(obj))


def _record(obj: object, params: dict[str, Any], reasons: list[str]) -> dict[str, Any]:
    """The record :func:`describe_object` returns, from :func:`_describe_params`' result."""
    return {"class": f"{type(obj).__module__}.{type(obj).__qualname__}", "params": params,
            "exact": not reasons}


def inexact_reasons(obj: object) -> list[str]:
    """Why ``Class(**params)`` from :func:`describe_object` would not rebuild ``obj``: one
    phrase per cause (an argument not kept under its own name, one recorded as its repr,
    ``*args``/``**kwargs``); empty when the record is exact."""
    return _describe_params(obj)[1]


def _describe_params(obj: object) -> tuple[dict[str, Any], list[str]]:
    """The JSON parameters of ``obj``'s record, and the reasons it is not exact."""
    from hpo_plugins.pruners._base import Pruner  # pruners import this module

    params = obj.get_params() if hasattr(obj, "get_params") else constructor_params(obj)
    reasons: list[str] = []
    if _takes_var_arguments(obj):
        reasons.append("its constructor takes *args or **kwargs")
    missing = [n for n in _constructor_names(obj) if n not in params]
    if missing:
        reasons.append(f"argument(s) {', '.join(missing)} not kept as attributes of the "
                       f"same name")
    safe: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, (Sampler, Pruner)):  # a wrapped plugin: described in turn
            nested, nested_reasons = _describe_params(value)
            safe[key] = _record(value, nested, nested_reasons)
            reasons += [f"{key}: {reason}" for reason in nested_reasons]
            continue
        ok, converted = _json_form(value)
        safe[key] = converted if ok else repr(value)
        if not ok:
            reasons.append(f"{key}={short_repr(value)} is not a JSON value (recorded as text)")
    return safe, reasons


def _json_form(value: Any) -> tuple[bool, Any]:
    """``(True, the JSON form)`` of a plain value, a numpy scalar, or a list, tuple or
    str-keyed dict of such values (a tuple becomes a list); ``(False, None)`` otherwise."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return False, None  # strict JSON has no inf or NaN: the record would be refused
    if value is None or isinstance(value, (str, bool, int, float)):
        return True, value
    if isinstance(value, (list, tuple)):
        items = [_json_form(v) for v in value]
        return all(ok for ok, _ in items), [v for _, v in items]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        pairs = {k: _json_form(v) for k, v in value.items()}
        converted = {k: v for k, (_, v) in pairs.items()}
        if not is_description(converted):  # else rebuild would read it as a wrapped plugin
            return all(ok for ok, _ in pairs.values()), converted
    return False, None


def is_description(value: object) -> bool:
    """Whether ``value`` is what :func:`describe_object` returns (a plain parameter never is:
    a dict parameter is recorded as its repr)."""
    return (isinstance(value, Mapping) and set(value) == {"class", "params", "exact"}
            and isinstance(value["class"], str))


def ranked_for_model(history: History) -> list[tuple[FrozenTrial, float]]:
    """Finished trials with a loss that orders them for a model-based sampler.

    COMPLETE trials get ``loss = sign * value`` (lower is better whatever the direction). PRUNED
    trials rank after every COMPLETE one: among themselves the deeper last step first, then the
    better last reported value (a NaN report last); they receive losses above the worst
    COMPLETE loss in that order. A trial pruned before any report (an objective that raises
    ``TrialPruned`` as an up-front check, say of a configuration that cannot fit) ranks after
    the other pruned ones: it is the worst evidence there is, and leaving it out would let the
    sampler propose the same region again and again without ever learning from it (Optuna's
    TPE ranks such trials last too). For the same reason a FAIL trial that diverged (see
    :func:`diverged`: a NaN or infinite report or value, a learning rate too high, say) ranks
    after them, last of all (Optuna's pruners prune a trial that reports a NaN, and its TPE
    ranks it last). Other FAIL trials (an exception, a lost worker: maybe a passing fault),
    RUNNING and WAITING trials are left out (a sampler chooses its own policy for running
    ones). Returns ``(trial, loss)`` pairs sorted by loss, best first.
    """
    sign = history.direction.sign()
    complete = [(t, sign * float(t.value)) for t in history.in_states(TrialState.COMPLETE)
                if t.value is not None]
    complete.sort(key=lambda pair: pair[1])
    pruned = sorted(history.in_states(TrialState.PRUNED), key=lambda t: _pruned_rank(t, sign))
    blown = [t for t in history.in_states(TrialState.FAIL) if diverged(t)]
    worst = complete[-1][1] if complete else 0.0
    base = worst + max(1.0, abs(worst))
    return complete + [(t, base + i) for i, t in enumerate(pruned + blown)]


#: How the fail reasons of diverged trials begin, for trials stored before
#: :data:`~hpo_plugins._frozen.DIVERGED_ATTR` was (a resumed older study): a NaN or infinite
#: report, value returned by the objective, or value told by hand.
_DIVERGED_REASONS = ("reported a non-finite value (", "the objective returned nan",
                     "the objective returned inf", "the objective returned -inf",
                     "the value told was nan", "the value told was inf",
                     "the value told was -inf")


def diverged(trial: FrozenTrial) -> bool:
    """Whether ``trial`` failed because it reported or returned a NaN or an infinity."""
    if trial.state is not TrialState.FAIL:
        return False
    if DIVERGED_ATTR in trial.system_attrs:
        return trial.system_attrs[DIVERGED_ATTR] is True
    reason = trial.fail_reason or ""
    return reason.startswith(_DIVERGED_REASONS)


def _pruned_rank(trial: FrozenTrial, sign: float) -> tuple[bool, int, bool, float]:
    """Sort key of a PRUNED trial, best first: one with reports before one without, then the
    deeper last step, then the better last value, a NaN (or missing) value last."""
    if not trial.intermediate_values:
        return (True, 0, True, 0.0)
    last = trial.last_value
    value = math.nan if last is None else sign * float(last)
    unusable = math.isnan(value)
    return (False, -(trial.last_step or 0), unusable, 0.0 if unusable else value)


def _accepts(cls: type, name: str) -> bool:
    """Whether ``cls(...)`` takes a keyword argument ``name`` (named, or through ``**kwargs``)."""
    parameters = inspect.signature(cls.__init__).parameters.values()  # type: ignore[misc]
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
