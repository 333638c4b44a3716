"""hpo_plugins: hyperparameter optimisation that plugs into Lightning and Keras.

Declare a search space in Hyperopt's language, then either let :func:`minimize` run the loop or
step it yourself with :meth:`Study.ask` / :meth:`Study.tell`. Importing this package imports no
training framework.
"""

from __future__ import annotations

from hpo_plugins import hp, importance, launchers, pruners, samplers, stoppers, storages
from hpo_plugins._api import maximize, minimize
from hpo_plugins._copy import copy_study
from hpo_plugins._frozen import Direction, FrozenTrial, TrialState
from hpo_plugins._observers import TrialObserver
from hpo_plugins._version import __version__
from hpo_plugins.context import TRIAL_ENV, current_trial
from hpo_plugins.exceptions import TrialPruned
from hpo_plugins.study import Study, create_study, delete_study, load_study
from hpo_plugins.trial import Trial

__all__ = [
    "TRIAL_ENV",
    "Direction",
    "FrozenTrial",
    "Study",
    "Trial",
    "TrialObserver",
    "TrialPruned",
    "TrialState",
    "__version__",
    "copy_study",
    "create_study",
    "current_trial",
    "delete_study",
    "hp",
    "importance",
    "launchers",
    "load_study",
    "maximize",
    "minimize",
    "pruners",
    "samplers",
    "stoppers",
    "storages",
]

# No handler of our own, not even a NullHandler: in a program that configures no logging,
# Python's last-resort handler shows WARNING and above on stderr (a study resumed with earlier
# trials, a trial that failed under catch=), while INFO stays silent. A program that configures
# logging decides for itself.
