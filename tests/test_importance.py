"""``hpo.importance.param_importances``: known effects come out in order, noise and conditional
parameters get what they are due, and bad input is explained."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins._frozen import FrozenTrial, TrialState
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.importance import param_importances
from hpo_plugins.samplers import RandomSampler

SPACE = {
    "lr": hp.loguniform("lr", math.log(1e-4), math.log(1e-1)),
    "net": hp.choice("net", [
        {"kind": "mlp", "layers": hp.quniform("mlp_layers", 1, 4, 1)},
        {"kind": "cnn", "filters": hp.choice("cnn_filters", [16, 32, 64])},
    ]),
    "noise": hp.uniform("noise", 0, 1),
}


def _objective(params: dict[str, Any]) -> float:
    """The choice matters most, the rate (U-shaped in log scale) next, the filters a little;
    the layer count and ``noise`` almost not at all."""
    value = 0.3 * (math.log10(params["lr"]) + 2.5) ** 2
    if params["net"]["kind"] == "cnn":
        value += 1.0 + 0.2 * [16, 32, 64].index(params["net"]["filters"])
    return value + 1e-4 * params["noise"]


def _study(n_trials: int, seed: int, objective: Any = _objective) -> hpo.Study:
    return hpo.minimize(objective, SPACE, n_trials=n_trials, storage=":memory:", seed=seed,
                        sampler=RandomSampler())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_known_effects_come_out_in_order(seed: int) -> None:
    importances = param_importances(_study(80, seed))
    assert list(importances)[:3] == ["net", "lr", "cnn_filters"]
    assert importances["net"] > 0.6 and 0.08 < importances["lr"] < 0.35
    assert importances["mlp_layers"] < 0.02 and importances["noise"] < 0.02
    assert sum(importances.values()) == pytest.approx(1.0)
    assert all(value >= 0 for value in importances.values())


def test_a_conditional_parameter_gets_no_credit_for_the_choice_that_enables_it() -> None:
    # mlp_layers is active exactly in the "mlp" trials, which are all better than the "cnn"
    # ones: judged over every trial, its "inactive" group would explain the whole split
    importances = param_importances(_study(80, 3))
    assert importances["net"] > 20 * importances["mlp_layers"]


def test_one_huge_value_does_not_decide_everything() -> None:
    def objective(params: dict[str, Any]) -> float:
        base = _objective(params)
        return 1e9 if params["noise"] > 0.97 else base  # a diverged trial, whatever its rate

    study = _study(80, 4, objective)
    assert max(t.params["noise"] for t in study.trials) > 0.97  # the outlier is there
    importances = param_importances(study)
    assert list(importances)[:2] == ["net", "lr"] and importances["noise"] < 0.1


def test_nothing_explains_a_constant_result() -> None:
    importances = param_importances(_study(20, 5, lambda params: 1.0))
    assert set(importances) == {"lr", "net", "mlp_layers", "cnn_filters", "noise"}
    assert set(importances.values()) == {0.0}


def test_a_subset_of_params_and_a_list_of_trials() -> None:
    study = _study(60, 6)
    subset = param_importances(study, params=["lr", "noise"])
    assert list(subset) == ["lr", "noise"] and sum(subset.values()) == pytest.approx(1.0)
    first_half = param_importances(study, trials=study.trials[:30])
    assert list(first_half)[:2] == ["net", "lr"]
    assert first_half != param_importances(study)


def test_failed_and_pruned_trials_are_left_out() -> None:
    study = _study(40, 7)
    before = param_importances(study)
    for state in (TrialState.FAIL, TrialState.PRUNED):
        trial = study.ask()
        study.tell(trial, 1e6 if state is TrialState.PRUNED else None, state=state)
    assert param_importances(study) == before
    assert param_importances(study, trials=study.trials) == before  # a list is filtered too


def _crafted(rows: list[dict[str, float]], values: list[float]) -> list[FrozenTrial]:
    return [FrozenTrial(trial_id=i, number=i, state=TrialState.COMPLETE, value=v, params=p)
            for i, (p, v) in enumerate(zip(rows, values))]


def test_two_parameters_that_always_agree_share_their_effect_equally() -> None:
    rng = random.Random(0)
    xs = [rng.random() for _ in range(40)]
    rows = [{"a": x, "b": x, "z": rng.random()} for x in xs]
    trials = _crafted(rows, xs)
    study = hpo.create_study({"a": hp.uniform("a", 0, 1)}, storage=":memory:")
    shares = param_importances(study, trials=trials)
    assert shares["a"] == pytest.approx(shares["b"]) and shares["a"] > 0.45
    reordered = _crafted([{"z": r["z"], "b": r["b"], "a": r["a"]} for r in rows], xs)
    assert param_importances(study, trials=reordered) == pytest.approx(shares)


def test_chance_is_charged_for_every_group() -> None:
    # x decides half of the result, the rest is noise; z has no effect but 8 bins to fit noise
    rng = random.Random(1)
    rows = [{"x": rng.random(), "z": rng.random()} for _ in range(60)]
    values = [r["x"] + rng.gauss(0.0, 0.3) for r in rows]
    study = hpo.create_study({"x": hp.uniform("x", 0, 1)}, storage=":memory:")
    shares = param_importances(study, trials=_crafted(rows, values), n_bins=8)
    assert shares["x"] > 0.95 and shares["z"] < 0.05


def test_a_choice_of_many_options_with_few_trials_each_is_not_overfitted() -> None:
    space = {"x": hp.uniform("x", 0, 1), "c": hp.choice("c", list(range(200)))}
    study = hpo.minimize(lambda p: 10 * p["x"] + 0.3 * (p["c"] % 2), space, n_trials=60,
                         storage=":memory:", seed=2, sampler=RandomSampler())
    shares = param_importances(study)
    assert list(shares) == ["x", "c"] and shares["x"] > 0.9


@pytest.mark.parametrize(("kwargs", "n_trials", "match"), [
    ({}, 2, r"Expected at least 3 COMPLETE trials with a finite value.*Received 2"),
    ({"params": ["lr", "nope"]}, 10, r"where \['nope'\] never occurs"),
    ({"params": "lr"}, 10, r"Expected `params` to be a list of parameter labels"),
    ({"n_bins": 1}, 10, r"Expected `n_bins` to be an integer >= 2.*Received: n_bins=1"),
])
def test_bad_input_is_explained(kwargs: dict[str, Any], n_trials: int, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        param_importances(_study(n_trials, 8), **kwargs)


@pytest.mark.parametrize("study", [None, "my-study", []])
def test_what_is_not_a_study_is_refused(study: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"Expected `study` to be a Study.*Received: "
                                                 r"study=.*hpo.load_study"):
        param_importances(study)


@pytest.mark.parametrize(("trials", "message"), [
    ([1, 2, 3], r"Expected `trials` to be a list of FrozenTrial.*Received: trials=\[1, 2, 3\], "
                r"which holds 1 \(of type int\)\. For trial numbers, pass the trials themselves"),
    (5, r"Received: trials=5 \(of type int\), which is not iterable"),
    ("first", r"Received: trials=FrozenTrial\(number=0\), one trial on its own\. Pass a list"),
])
def test_trials_that_are_not_frozen_trials_are_refused(trials: Any, message: str) -> None:
    study = _study(10, 8)
    with pytest.raises(ConfigurationError, match=message):
        param_importances(study, trials=study.trials[0] if trials == "first" else trials)


def test_trials_may_be_any_iterable_of_frozen_trials() -> None:
    study = _study(10, 8)
    assert param_importances(study, trials=(t for t in study.trials)) == param_importances(study)
