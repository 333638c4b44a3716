"""PatientPruner against hand-computed cases, and its record: a wrapped pruner is rebuilt too."""

from __future__ import annotations

import math
import sys
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins._frozen import Direction, FrozenTrial, TrialState
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.pruners import MedianPruner, PatientPruner, Pruner, ThresholdPruner
from hpo_plugins.samplers import RandomSampler
from hpo_plugins.samplers._base import describe_object

from . import make_trial

NAN = math.nan


def decide(curve: Sequence[float] | Mapping[int, float], patience: int, min_delta: float = 0.0,
           direction: Direction = Direction.MINIMIZE) -> bool:
    return PatientPruner(None, patience, min_delta).prune(make_trial(0, curve), [], direction)


@pytest.mark.parametrize(("curve", "patience", "min_delta", "expected"), [
    # best before the window 0.5; the last two reports 0.52, 0.51 do not beat it
    ([0.9, 0.5, 0.52, 0.51], 2, 0.0, True),
    ([0.9, 0.5, 0.52, 0.51], 3, 0.0, False),  # the window holds 0.5, which beats 0.9
    ([0.9, 0.5, 0.5], 1, 0.0, True),  # equal to the earlier best is no improvement
    ([0.9, 0.5, 0.49], 1, 0.0, False),
    ([0.9, 0.5, 0.49], 1, 0.02, True),  # 0.01 better, but min_delta asks for more than 0.02
    ([0.9, 0.5, 0.47], 1, 0.02, False),
    ([0.9, 0.5], 2, 0.0, False),  # not more than `patience` reports yet
    ([0.9, NAN, NAN], 2, 0.0, True),  # NaN reports are no improvement
    ([NAN, 0.5, 0.6], 1, 0.0, True),  # the NaN is skipped: 0.6 does not beat 0.5
    ([NAN, 0.5], 1, 0.0, False),  # only NaN before the window: nothing to improve on yet
    ({0: 0.9, 5: 0.5, 10: 0.6}, 1, 0.0, True),  # reports are counted, not steps
    ({}, 1, 0.0, False),
    # Keras' count: 0.95 is not 0.1 better than 1.0 (wait 1); 0.86 is (a new reference, wait
    # 0); 0.85 is not (wait 1 < 2). Comparing with the best before a window would prune here.
    ([1.0, 0.95, 0.86, 0.85], 2, 0.1, False),
    ([1.0, 0.95, 0.91, 0.92], 2, 0.1, True),  # 0.95 and 0.91: small steps never add up
])
def test_minimising(curve: Any, patience: int, min_delta: float, expected: bool) -> None:
    assert decide(curve, patience, min_delta) is expected


def test_maximising_mirrors_minimising() -> None:
    assert decide([0.1, 0.5, 0.48, 0.5], 2, direction=Direction.MAXIMIZE) is True
    assert decide([0.1, 0.5, 0.48, 0.51], 2, direction=Direction.MAXIMIZE) is False
    assert decide([0.1, 0.5, 0.51], 1, 0.02, direction=Direction.MAXIMIZE) is True


class _Recording(Pruner):
    """A wrapped pruner that says yes and records that it was asked."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    def prune(self, trial: FrozenTrial, others: Sequence[FrozenTrial],
              direction: Direction) -> bool:
        self.asked.append(trial.number)
        return True


def test_the_wrapped_pruner_decides_only_for_stagnant_trials() -> None:
    wrapped = _Recording()
    pruner = PatientPruner(wrapped, patience=1)
    improving = make_trial(1, [0.9, 0.8, 0.7])
    stagnant = make_trial(2, [0.9, 0.8, 0.85])
    assert not pruner.prune(improving, [], Direction.MINIMIZE)
    assert pruner.prune(stagnant, [], Direction.MINIMIZE)
    assert wrapped.asked == [2]


def test_around_the_median_a_slow_starter_is_spared_until_it_stalls() -> None:
    rivals = [make_trial(i, [0.5, 0.4, 0.3, 0.2], TrialState.COMPLETE) for i in range(5)]
    slow = make_trial(9, [0.9, 0.8, 0.7])  # worse than the median, but improving
    assert MedianPruner().prune(slow, rivals, Direction.MINIMIZE)
    patient = PatientPruner(MedianPruner(), patience=2)
    assert not patient.prune(slow, rivals, Direction.MINIMIZE)
    stalled = make_trial(9, [0.9, 0.8, 0.8, 0.85])
    assert patient.prune(stalled, rivals, Direction.MINIMIZE)


def test_its_record_describes_the_wrapped_pruner_and_rebuilds_exactly() -> None:
    pruner = PatientPruner(MedianPruner(n_startup_trials=2), patience=3, min_delta=0.01)
    described = describe_object(pruner)
    assert described["exact"] is True
    assert described["params"]["wrapped_pruner"] == describe_object(MedianPruner(
        n_startup_trials=2))
    storage = hpo.storages.InMemoryStorage()
    hpo.create_study({"x": hp.uniform("x", 0, 1)}, study_name="p", storage=storage,
                     pruner=pruner)
    rebuilt = hpo.load_study("p", storage).pruner
    assert isinstance(rebuilt, PatientPruner) and repr(rebuilt) == repr(pruner)
    assert isinstance(rebuilt.wrapped_pruner, MedianPruner)
    # a resume without pruner= keeps it, without a warning that it could not be rebuilt
    again = hpo.create_study({"x": hp.uniform("x", 0, 1)}, study_name="p", storage=storage)
    assert repr(again.pruner) == repr(pruner)


def test_a_wrapped_pruner_that_cannot_be_rebuilt_makes_the_record_inexact() -> None:
    class Local(Pruner):
        def __init__(self, level: object) -> None:
            self.level = level

        def prune(self, trial: FrozenTrial, others: Sequence[FrozenTrial],
                  direction: Direction) -> bool:
            return False

    assert describe_object(PatientPruner(Local(object()), patience=1))["exact"] is False
    assert describe_object(PatientPruner(None, patience=1))["exact"] is True


def test_a_script_child_rebuilds_the_patient_pruner_and_prunes(tmp_path: Path) -> None:
    child = tmp_path / "child.py"
    child.write_text(textwrap.dedent("""
        import hpo_plugins as hpo
        trial = hpo.current_trial()
        for step, loss in enumerate([0.9, 0.5, 0.6, 0.7, 0.8]):
            trial.report(loss, step)
            if trial.should_prune():
                trial.mark_pruned()
                break
    """))
    study = hpo.create_study({"x": hp.uniform("x", 0, 1)}, study_name="s", sampler=RandomSampler(),
                             storage=f"sqlite:///{tmp_path}/s.db",
                             pruner=PatientPruner(ThresholdPruner(upper=0.55), patience=2))
    study.optimize(hpo.launchers.ScriptObjective([sys.executable, str(child)]), n_trials=1)
    trial = study.trials[0]
    # stagnant after 0.6, 0.7 (the best, 0.5, came before them); 0.7 > 0.55 -> pruned at step 3
    assert trial.state is TrialState.PRUNED and trial.last_step == 3


@pytest.mark.parametrize(("args", "match"), [
    ((MedianPruner, 2), r"Expected `wrapped_pruner` to be a Pruner .* or None\. Received: "
                        r"wrapped_pruner=<class"),
    ((None, 0), r"Expected `patience` to be an integer >= 1\. Received: patience=0"),
    ((None, 2, -0.1), r"Expected `min_delta` to be a finite number >= 0\. .*=-0\.1"),
    ((None, 2, NAN), r"Received: min_delta=nan"),
])
def test_invalid_arguments(args: tuple[Any, ...], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        PatientPruner(*args)


def test_its_repr_names_every_argument() -> None:
    assert repr(PatientPruner(None, 2)) == (
        "PatientPruner(wrapped_pruner=None, patience=2, min_delta=0.0)")


@pytest.mark.parametrize("nested", [False, True])
def test_a_record_naming_something_else_than_a_plugin_is_never_called(
        tmp_path: Path, nested: bool, caplog: pytest.LogCaptureFixture) -> None:
    marker = tmp_path / "called"
    record = {"class": "subprocess.getoutput", "params": {"cmd": f"touch {marker}"},
              "exact": True}
    if nested:
        record = {"class": "hpo_plugins.pruners._patient.PatientPruner",
                  "params": {"wrapped_pruner": record, "patience": 2, "min_delta": 0.0},
                  "exact": True}
    storage = hpo.storages.InMemoryStorage()
    storage.create_study("s", Direction.MINIMIZE, {"pruner": record})
    pruner = hpo.load_study("s", storage).pruner
    assert not marker.exists()
    assert repr(pruner) == "NopPruner()"
    assert "subprocess.getoutput" in caplog.text and "it is not a" in caplog.text
