"""End to end, no mocks: workers step trials in an interleaved order and ask the pruner.

30 trials with deterministic decreasing curves ``a + c / (step + 1)``: the asymptotes ``a`` are a
permutation of 0, 1/30, ..., 29/30 (trial 7 has ``a = 0``), the speeds ``c`` another permutation
of 0.5 .. 1.47, so the other curves cross (trial 7 has ``c = 0.53``: since every other ``a`` is
``>= 1/30`` and every ``c >= 0.5``, it is ahead at every step). Four simulated workers
each hold a trial; a seeded random choice of worker advances its trial by one step, reports the
value and asks the pruner with a snapshot of every other trial, as ``Trial.should_prune`` would.
A pruned or finished trial frees its worker for the next number.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from hpo_plugins._frozen import Direction, FrozenTrial, TrialState
from hpo_plugins.pruners import (
    HyperbandPruner,
    MedianPruner,
    NopPruner,
    Pruner,
    SuccessiveHalvingPruner,
)

N_TRIALS, N_STEPS, N_WORKERS = 30, 81, 4
BEST = 7


def loss(number: int, step: int) -> float:
    asymptote = (7 * number + 11) % 30 / 30
    speed = 0.5 + (13 * number) % 30 / 30
    return asymptote + speed / (step + 1)


@dataclass
class Study:
    direction: Direction
    curves: dict[int, dict[int, float]] = field(
        default_factory=lambda: {n: {} for n in range(N_TRIALS)})
    states: dict[int, TrialState] = field(
        default_factory=lambda: dict.fromkeys(range(N_TRIALS), TrialState.WAITING))
    steps_trained: int = 0

    def frozen(self, number: int) -> FrozenTrial:
        curve, state = self.curves[number], self.states[number]
        value = curve[max(curve)] if state.is_finished else None
        return FrozenTrial(trial_id=number, number=number, state=state, value=value,
                           intermediate_values=dict(curve))

    def step(self, number: int, pruner: Pruner) -> bool:
        """Train ``number`` one more step; True when its worker is free again."""
        step = len(self.curves[number])
        self.curves[number][step] = self.direction.sign() * loss(number, step)
        self.steps_trained += 1
        others = [self.frozen(n) for n in range(N_TRIALS) if n != number]
        if pruner.prune(self.frozen(number), others, self.direction):
            self.states[number] = TrialState.PRUNED
        elif step == N_STEPS - 1:
            self.states[number] = TrialState.COMPLETE
        return self.states[number].is_finished


def simulate(pruner: Pruner, seed: int, direction: Direction) -> Study:
    study, rng, queue = Study(direction), random.Random(seed), iter(range(N_TRIALS))
    workers: list[int | None] = [next(queue) for _ in range(N_WORKERS)]
    for number in workers:
        study.states[number] = TrialState.RUNNING  # type: ignore[index]
    while busy := [w for w, n in enumerate(workers) if n is not None]:
        worker = rng.choice(busy)
        if study.step(workers[worker], pruner):  # type: ignore[arg-type]
            workers[worker] = next(queue, None)
            if workers[worker] is not None:
                study.states[workers[worker]] = TrialState.RUNNING  # type: ignore[index]
    return study


SEEDS = [0, 1, 2]
DIRECTIONS = [Direction.MINIMIZE, Direction.MAXIMIZE]


def test_without_pruning_every_trial_trains_every_step() -> None:
    study = simulate(NopPruner(), 0, Direction.MINIMIZE)
    assert study.steps_trained == N_TRIALS * N_STEPS
    assert set(study.states.values()) == {TrialState.COMPLETE}


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("seed", SEEDS)
def test_successive_halving_keeps_the_best_and_halves_the_work(seed: int,
                                                               direction: Direction) -> None:
    study = simulate(SuccessiveHalvingPruner(min_resource=1), seed, direction)
    assert study.states[BEST] is TrialState.COMPLETE
    assert 2 * study.steps_trained <= N_TRIALS * N_STEPS
    assert TrialState.PRUNED in study.states.values()


@pytest.mark.parametrize("pruner", [
    SuccessiveHalvingPruner(),  # min_resource="auto": nothing pruned until a trial completes
    HyperbandPruner(max_resource=N_STEPS),
    MedianPruner(),
], ids=repr)
@pytest.mark.parametrize("seed", SEEDS)
def test_other_pruners_keep_the_best_and_save_work(pruner: Pruner, seed: int) -> None:
    study = simulate(pruner, seed, Direction.MINIMIZE)
    assert study.states[BEST] is TrialState.COMPLETE
    assert study.steps_trained < N_TRIALS * N_STEPS


def test_the_simulation_is_deterministic() -> None:
    first = simulate(SuccessiveHalvingPruner(min_resource=1), 0, Direction.MINIMIZE)
    again = simulate(SuccessiveHalvingPruner(min_resource=1), 0, Direction.MINIMIZE)
    assert first.states == again.states
    assert first.steps_trained == again.steps_trained
