"""Type checks of the arguments that must be a :class:`~hpo_plugins.study.Study`.

Functions outside the study module that take a study (``param_importances``, the TensorBoard
observer) would otherwise fail on a study name or a path with a bare ``AttributeError`` deep
inside.
"""

from __future__ import annotations

import reprlib
from typing import Any

from hpo_plugins.exceptions import ConfigurationError

__all__ = ["require_study"]


def require_study(study: Any, expected: str, fix: str) -> None:
    """Refuse anything but a Study: the message says ``expected`` (what a study is for here),
    what came in, and ``fix``.

    Raises:
        ConfigurationError: ``study`` is not a Study.
    """
    from hpo_plugins.study import Study  # here: modules the study module imports call this

    if not isinstance(study, Study):
        raise ConfigurationError(
            f"Expected `study` to be {expected}. Received: study={reprlib.repr(study)} (of "
            f"type {type(study).__name__}). {fix}")
