"""Code ported from Hyperopt or Optuna: each foreign argument gets an error that names ours."""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import optuna
import pytest
from hyperopt import anneal, rand, tpe

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.pruners import HyperbandPruner, MedianPruner, PercentilePruner
from hpo_plugins.samplers import HyperoptTPESampler, TPESampler

SPACE = {"x": hp.uniform("x", -1, 1)}


def _objective(params: dict[str, Any]) -> float:
    return float(params["x"] ** 2)


@pytest.mark.parametrize(("kwargs", "fix"), [
    ({"max_evals": 5}, r"`max_evals` -> n_trials=5 .* or max_trials=5"),
    ({"algo": tpe.suggest}, r"`algo` -> sampler=: tpe.suggest becomes "
                            r"sampler=hpo.samplers.HyperoptTPESampler\(\)"),
    ({"rstate": np.random.default_rng(0)}, r"`rstate` -> seed= an integer"),
    ({"points_to_evaluate": [{"x": 0.5}]}, r"study.enqueue\(point\)"),
    ({"early_stop_fn": lambda trials: (False, [])}, r"study.stop\(\)"),
    ({"trials": object(), "show_progressbar": False},
     r"`trials` -> nothing: the study is the record.*`show_progressbar` -> show_progress_bar="),
])
def test_fmin_arguments_name_their_replacement(kwargs: dict[str, Any], fix: str) -> None:
    with pytest.raises(ConfigurationError, match=r"minimize\(\) does not take .*" + fix):
        hpo.minimize(_objective, SPACE, storage=":memory:", **kwargs)


def test_fmin_positional_call_and_optimize_get_the_same_help() -> None:
    with pytest.raises(ConfigurationError, match=r"minimize\(\) takes its first arguments by "
                                                 r"position .*minimize\(objective, space, "
                                                 r"n_trials=\.\.\., sampler=\.\.\.\)"):
        hpo.minimize(_objective, SPACE, tpe.suggest, 5)  # fmin(fn, space, algo, max_evals)
    study = hpo.create_study(SPACE, storage=":memory:")
    with pytest.raises(ConfigurationError, match=r"optimize\(\) does not take `max_evals`"):
        study.optimize(_objective, max_evals=3)
    assert study.trials == []  # refused before anything ran


@pytest.mark.parametrize(("sampler", "fix"), [
    (tpe.suggest, r"hyperopt.tpe.suggest is a Hyperopt algorithm; .* "
                  r"hpo.samplers.HyperoptTPESampler\(\)"),
    (rand.suggest, r"hpo.samplers.RandomSampler\(\)"),
    (functools.partial(tpe.suggest, n_startup_jobs=5), r"hyperopt.tpe.suggest is a Hyperopt "
                                                       r"algorithm"),
    (anneal.suggest, r"hpo.samplers.AnnealSampler\(\)"),
    (TPESampler, r"Pass an instance, not the class: TPESampler\(\)"),
    (optuna.samplers.TPESampler(), r"Optuna's samplers .* use hpo_plugins.samplers.TPESampler"),
    (optuna.samplers.CmaEsSampler(), r"use one of hpo_plugins.samplers\."),
])
def test_a_foreign_sampler_names_ours(sampler: Any, fix: str) -> None:
    with pytest.raises(ConfigurationError, match=r"Expected `sampler` to be an instance of "
                                                 r"Sampler\..*" + fix):
        hpo.create_study(SPACE, storage=":memory:", sampler=sampler)


def test_a_foreign_pruner_and_a_generator_seed_name_ours() -> None:
    with pytest.raises(ConfigurationError, match=r"use hpo_plugins.pruners.MedianPruner"):
        hpo.create_study(SPACE, storage=":memory:", pruner=optuna.pruners.MedianPruner())
    with pytest.raises(ConfigurationError, match=r"A random generator is not a seed: .*seed=0"):
        hpo.create_study(SPACE, storage=":memory:", seed=np.random.default_rng(0))  # type: ignore[arg-type]


def test_hyperopts_sampler_options_and_optunas_positional_pruners_name_ours() -> None:
    with pytest.raises(ConfigurationError, match=r"`n_startup_jobs` -> n_startup_trials=5; "
                                                 r"`n_EI_candidates` -> n_ei_candidates=12"):
        HyperoptTPESampler(n_startup_jobs=5, n_EI_candidates=12)  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match=r"TPESampler\(\) does not take "
                                                 r"`num_initial_points` \(Hyperopt's or Keras "
                                                 r"Tuner's name\).*n_startup_trials=5"):
        TPESampler(num_initial_points=5)  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match=r"HyperbandPruner\(\) does not take "
                                                 r"`max_epochs`, `factor` \(Keras Tuner's name\)"
                                                 r".*max_resource=27.*reduction_factor=2"):
        HyperbandPruner(max_epochs=27, factor=2)  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match=r"MedianPruner\(\) takes its options by "
                                                 r"keyword: MedianPruner\(n_startup_trials=\.\.\."
                                                 r".*Received 2 positional argument\(s\): 5, 3"):
        MedianPruner(5, 3)  # type: ignore[misc]
    with pytest.raises(ConfigurationError, match=r"PercentilePruner\(percentile, "):
        PercentilePruner(25.0, 5)  # type: ignore[misc]
    # what stays allowed: a positional argument the constructor takes, our own names
    assert PercentilePruner(25.0).percentile == 25.0
    assert HyperoptTPESampler(n_startup_trials=5).n_startup_trials == 5


def test_a_foreign_argument_error_is_also_a_type_error_as_pythons_own() -> None:
    """Code that catches Python's TypeError for an unexpected keyword still catches ours."""
    with pytest.raises(TypeError, match=r"`max_evals` -> n_trials=5") as raised:
        hpo.minimize(_objective, SPACE, storage=":memory:", max_evals=5)
    assert isinstance(raised.value, ConfigurationError)
    with pytest.raises(TypeError, match=r"takes its options by keyword"):
        MedianPruner(5, 3)  # type: ignore[misc]
    with pytest.raises(TypeError, match=r"Expected no `seed` in TPESampler"):
        TPESampler(seed=0)  # type: ignore[call-arg]  # Optuna's reflex


# -- attributes of Optuna's Study and Trial, and of Hyperopt's Trials ---------------------------

def test_each_foreign_study_attribute_names_ours_and_exists_where_it_comes_from() -> None:
    import hyperopt

    from hpo_plugins._ported import STUDY_ATTRIBUTES

    study = hpo.create_study(SPACE, storage=":memory:")
    for name, hint in STUDY_ATTRIBUTES.items():
        # an entry for a name its library does not have would be a made-up hint
        assert hasattr(optuna.Study, name) or hasattr(hyperopt.Trials, name), name
        with pytest.raises(AttributeError) as raised:
            getattr(study, name)
        assert str(raised.value) == f"'Study' object has no attribute {name!r}: use {hint}."
        assert raised.value.name == name and raised.value.obj is study
        assert not hasattr(study, name)
    # what the hints point to exists
    for ours in ("enqueue", "add_trial", "best_trial", "direction", "metric", "user_attrs",
                 "trials", "best_params"):
        assert hasattr(hpo.Study, ours) or ours in vars(study), ours


def test_optuna_suggest_calls_on_a_running_trial_point_to_the_space() -> None:
    from hpo_plugins._ported import TRIAL_ATTRIBUTES

    study = hpo.create_study(SPACE, storage=":memory:")
    trial = study.ask()
    for name in TRIAL_ATTRIBUTES:
        assert hasattr(optuna.trial.Trial, name), name
    with pytest.raises(AttributeError, match=r"'Trial' object has no attribute 'suggest_float': "
                                             r"use a parameter of the search space"):
        trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    assert trial.study.space is study.space  # what the 'distributions' hint names


def test_other_missing_attributes_keep_python_s_error_and_a_property_s_own() -> None:
    study = hpo.create_study(SPACE, storage=":memory:")
    with pytest.raises(AttributeError) as raised:
        study.bets_trial  # noqa: B018  (a typo: Python's own message, nothing made up)
    assert str(raised.value) == "'Study' object has no attribute 'bets_trial'"
    assert getattr(study, "bets_trial", "default") == "default"

    class Broken(hpo.Study):
        @property
        def artifact_root(self) -> str:
            raise AttributeError("inner: a bug inside the property")

    study.__class__ = Broken
    # without care, __getattr__ would report "no attribute 'artifact_root'" and hide the bug
    with pytest.raises(AttributeError, match="inner: a bug inside the property"):
        study.artifact_root  # noqa: B018
