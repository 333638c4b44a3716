"""What ``keras_tune`` returns: the study, and the best models rebuilt from their weights."""

from __future__ import annotations

import numbers
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpo_plugins._frozen import CHECKPOINT_ATTR, FrozenTrial, TrialState
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.keras._checks import check_model
from hpo_plugins.keras._shapes import BUILD_ATTR, rebuild
from hpo_plugins.storages._base import ranked_by_value

if TYPE_CHECKING:
    from hpo_plugins.study import Study


__all__ = ["KerasTuneResult"]


@dataclass(frozen=True)
class KerasTuneResult:
    """What :func:`keras_tune` returns: the study and the way back to its best model.

    Attributes:
        study: The full study (trials, curves, storage, ``trials_dataframe()``).
        build_fn: The function that built each trial's model.

    Example:
        >>> result = keras_tune(build_fn, space, x=x, y=y, validation_split=0.2,
        ...                     n_trials=20)  # doctest: +SKIP
        >>> result.best_params, result.best_value  # doctest: +SKIP
        >>> model = result.best_model()  # best weights, no retraining  # doctest: +SKIP
        >>> runners_up = result.best_models(3)  # the three best, best first  # doctest: +SKIP
    """

    study: Study
    build_fn: Callable[[Any], Any]

    @property
    def best_trial(self) -> FrozenTrial:
        """The COMPLETE trial with the best value."""
        return self.study.best_trial

    @property
    def best_params(self) -> Any:
        """The best trial's nested natural params (what ``build_fn`` received)."""
        return self.study.best_params

    @property
    def best_value(self) -> float:
        """The best trial's value: the best epoch's ``objective``."""
        return self.study.best_value

    @property
    def best_checkpoint(self) -> str:
        """The path of the best trial's best weights (a ``.weights.h5`` file).

        Raises:
            ConfigurationError: The file is not there (moved, deleted, or another machine's).
        """
        return self.checkpoint_of(self.best_trial)

    def best_trials(self, n: int = 1) -> list[FrozenTrial]:
        """The ``n`` best COMPLETE trials, best first (fewer when fewer completed); Keras
        Tuner's ``get_best_trials``. Their ``params`` are in :meth:`Study.natural_params`.

        Raises:
            ConfigurationError: ``n`` is not an integer >= 1, or no trial completed.
        """
        if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 1:
            raise ConfigurationError(
                f"Expected `n` to be an integer >= 1, the number of trials. Received: n={n!r}.")
        ranked = ranked_by_value(self.study.get_trials(TrialState.COMPLETE),
                                 self.study.direction)
        if not ranked:
            return [self.best_trial]  # raises, with the trials counted by state
        return ranked[:int(n)]

    def best_models(self, n: int = 1) -> list[Any]:
        """The models of :meth:`best_trials` ``(n)``, best first, each as :meth:`model_of`
        gives it; Keras Tuner's ``get_best_models``."""
        return [self.model_of(trial) for trial in self.best_trials(n)]

    def best_model(self) -> Any:
        """Rebuild the best trial's model with ``build_fn`` and load its best weights.

        No training happens: the model gives the validation score of the best trial's best
        epoch. It is compiled as ``build_fn`` compiles it, with the optimiser's state of that
        epoch restored too, so training can go on from there.

        Raises:
            ConfigurationError: No trial completed, or as :meth:`model_of`.
        """
        return self.model_of(self.best_trial)

    def checkpoint_of(self, trial: FrozenTrial) -> str:
        """The path of ``trial``'s best weights (a ``.weights.h5`` file): those of its best
        epoch (up to the one it was pruned at, for a PRUNED trial).

        Raises:
            ConfigurationError: ``trial`` is no trial of this study that saved weights, or the
                file is not there (moved, deleted, or another machine's).
        """
        if not isinstance(trial, FrozenTrial):
            raise ConfigurationError(
                f"Expected a trial of result.study (an item of result.study.trials or of "
                f"result.best_trials(n)). Received: {trial!r} (of type "
                f"{type(trial).__name__}).")
        path = trial.user_attrs.get(CHECKPOINT_ATTR)
        if not isinstance(path, str) or not os.path.isfile(path):
            raise ConfigurationError(
                f"Expected the weights of trial {trial.number} at {path!r}, but no such file "
                f"exists (a trial that failed before its first validation saves none). Run "
                f"this where the trial directories are (logdir=), or retrain with "
                f"result.build_fn(result.study.natural_params(trial)).")
        return path

    def model_of(self, trial: FrozenTrial) -> Any:
        """Rebuild ``trial``'s model with ``build_fn`` and load its best weights (see
        :meth:`best_model`): a runner-up, or a PRUNED trial's model as it was when it stopped.

        Raises:
            ConfigurationError: As :meth:`checkpoint_of`, or ``build_fn`` returns a model whose
                weights do not exist yet and cannot be created from the input shapes the
                trial's ``fit`` saw (a model without ``keras.Input`` is built from them as
                ``fit`` built it).
        """
        path = self.checkpoint_of(trial)
        model = check_model(self.build_fn(self.study.natural_params(trial)))
        record = trial.system_attrs.get(BUILD_ATTR)
        if not model.built and isinstance(record, dict):  # fit built it at its first batch
            rebuild(model, record)
        if not model.built:
            raise ConfigurationError(
                "Expected build_fn to return a built model (with its weights created) so that "
                "the best weights can be loaded"
                + (f", or one that builds from the input shapes its trial recorded ({record})"
                   if isinstance(record, dict) else "")
                + ". Start the model with keras.Input(shape=...), or call "
                "model.build(input_shape) in build_fn.")
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)  # so its saved state loads too
        model.load_weights(path)
        return model
