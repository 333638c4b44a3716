"""Hyperband: successive halving in several brackets, a trial's bracket fixed by its number."""

from __future__ import annotations

from collections.abc import Sequence

from hpo_plugins._checks import check_int
from hpo_plugins._frozen import Direction, FrozenTrial
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.pruners._base import Pruner
from hpo_plugins.pruners._curves import CurveMemo, curve_memo
from hpo_plugins.pruners._median import peers_of
from hpo_plugins.pruners._successive_halving import (
    SuccessiveHalvingPruner,
    longest_complete_curve,
)

__all__ = ["HyperbandPruner"]

_GOLDEN = 0x9E3779B97F4A7C15  # 2**64 / golden ratio, odd: Fibonacci hashing


class HyperbandPruner(Pruner):
    """Hyperband (Li et al., 2018) over asynchronous successive halving.

    Bracket ``b = 0 .. n_brackets - 1`` is a :class:`SuccessiveHalvingPruner` with
    ``min_early_stopping_rate=b``: its first rung sits at ``min_resource * eta ** b``, so bracket
    0 prunes hardest and earliest and the last bracket latest. ``n_brackets =
    floor(log_eta(max_resource / min_resource)) + 1`` (computed exactly, in integers).

    * **Bracket of a trial.** :meth:`bracket_of` maps the trial number to a bracket with
      Fibonacci hashing (``number * 0x9E3779B97F4A7C15 mod 2**64``, scaled to the total budget),
      so it is the same in every process and Python version, consecutive numbers are spread over
      the brackets, and any run of numbers fills bracket ``b`` in proportion to Hyperband's
      ``n_b = ceil(n_brackets * eta ** s / (s + 1))`` with ``s = n_brackets - 1 - b`` (the
      number of configurations of that bracket in the paper).
    * **Competition.** A trial is compared only with the trials of its own bracket (the others'
      brackets come from their numbers), by the rules of :class:`SuccessiveHalvingPruner`:
      checked once at each rung its latest report crosses, skipped rungs included; rung value
      is the value at the first step ``>=`` the rung; kept if fewer than
      ``max(1, n // eta)`` rivals are strictly better; a NaN rung value is pruned.
    * **The last step.** A report at step ``max_resource - 1`` or later (the trial has run every
      step) is never pruned, even where a rung falls on it (``max_resource=10``, ``eta=3``:
      the rung at 9): the trial completes, as in Hyperband, where the largest budget ends a
      trial rather than judges it.
    * **max_resource="auto".** Nothing is pruned until a trial is COMPLETE; then
      ``max_resource`` is one more than the largest last step of the COMPLETE trials (the number
      of steps of a curve counted from step 0). It only grows; if it grows past a power of
      ``eta``, ``n_brackets`` and therefore the brackets change from then on, so give an integer
      when the trials' lengths differ. (A ``max_resource`` below ``min_resource`` means one
      bracket.)

    Args:
        min_resource: Step unit of the rungs.
        max_resource: Steps a trial that is never pruned runs, or ``"auto"``.
        reduction_factor: ``eta``: keep about one trial in ``eta`` at each rung.
        bootstrap_count: The first this many trials of a bracket to reach a rung are kept.

    Raises:
        ConfigurationError: An argument is not an integer in its range (or ``"auto"``).

    Example:
        >>> pruner = HyperbandPruner(min_resource=1, max_resource=81)
        >>> pruner.n_brackets(81)  # first rungs at 1, 3, 9, 27, 81
        5
        >>> [pruner.bracket_of(n) for n in range(8)]
        [0, 1, 0, 2, 0, 0, 1, 0]
    """

    def __init__(self, *, min_resource: int = 1, max_resource: int | str = "auto",
                 reduction_factor: int = 3, bootstrap_count: int = 0) -> None:
        self.min_resource = check_int("min_resource", min_resource, minimum=1)
        self.max_resource = check_int("max_resource", max_resource, minimum=self.min_resource,
                                      auto=True)
        self.reduction_factor = check_int("reduction_factor", reduction_factor, minimum=2)
        self.bootstrap_count = check_int("bootstrap_count", bootstrap_count, minimum=0)

    def prune(self, trial: FrozenTrial, others: Sequence[FrozenTrial],
              direction: Direction) -> bool:
        """True if the trial loses a rung of its own bracket (see the class docstring)."""
        others = peers_of(trial, others)
        memo = curve_memo(self)
        max_resource = self._resolve_max_resource(others, memo)
        if max_resource is None:
            return False
        last = memo.curve(trial).last_step
        # a trial that has run every step (0 .. max_resource - 1) is not judged: Hyperband's
        # largest budget ends a trial; pruning there saves nothing and ranks a fully trained
        # trial below the COMPLETE ones
        decision = (last is None or last < max_resource - 1) and self._loses_in_bracket(
            trial, others, direction, memo, max_resource)
        memo.forget_others(others)
        return decision

    def _loses_in_bracket(self, trial: FrozenTrial, others: Sequence[FrozenTrial],
                          direction: Direction, memo: CurveMemo, max_resource: int) -> bool:
        """Successive halving among the trials of ``trial``'s own bracket."""
        budgets = self._budgets(max_resource)
        bracket = _bracket(trial.number, budgets)
        rivals = [t for t in others if _bracket(t.number, budgets) == bracket]
        pruner = SuccessiveHalvingPruner(
            min_resource=self.min_resource, reduction_factor=self.reduction_factor,
            min_early_stopping_rate=bracket, bootstrap_count=self.bootstrap_count)
        return pruner.decide(trial, rivals, direction, memo)

    def bracket_of(self, number: int, max_resource: int | None = None) -> int:
        """The bracket (its ``min_early_stopping_rate``) of trial ``number``.

        Args:
            number: The trial number.
            max_resource: The resolved maximum resource; required when the pruner's own
                ``max_resource`` is ``"auto"``.

        Raises:
            ConfigurationError: ``max_resource`` is unknown.
        """
        if max_resource is None:
            if not isinstance(self.max_resource, int):
                raise ConfigurationError(
                    'Expected `max_resource` to be given when the pruner\'s is "auto". '
                    "Received: max_resource=None")
            max_resource = self.max_resource
        return _bracket(number, self._budgets(max_resource))

    def n_brackets(self, max_resource: int) -> int:
        """``floor(log_eta(max_resource / min_resource)) + 1``, at least 1, in integers."""
        count, first_rung = 1, self.min_resource * self.reduction_factor
        while first_rung <= max_resource:
            count, first_rung = count + 1, first_rung * self.reduction_factor
        return count

    def _budgets(self, max_resource: int) -> list[int]:
        """Hyperband's number of configurations of each bracket, bracket 0 first."""
        n = self.n_brackets(max_resource)
        eta = self.reduction_factor
        return [-(-n * eta ** (n - 1 - b) // (n - b)) for b in range(n)]

    def _resolve_max_resource(self, others: Sequence[FrozenTrial],
                              memo: CurveMemo) -> int | None:
        if isinstance(self.max_resource, int):
            return self.max_resource
        longest = longest_complete_curve(others, memo)
        return None if longest is None else longest + 1


def _bracket(number: int, budgets: Sequence[int]) -> int:
    """Map ``number`` to a slot of ``sum(budgets)`` by Fibonacci hashing, then to its bracket."""
    slot = ((number * _GOLDEN) % 2**64 * sum(budgets)) >> 64
    for bracket, budget in enumerate(budgets):
        if slot < budget:
            return bracket
        slot -= budget
    raise AssertionError("unreachable: slot < sum(budgets)")  # pragma: no cover
