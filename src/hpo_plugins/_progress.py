"""The run's tqdm progress bar, with the best value so far."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, Any

from hpo_plugins._frozen import (
    FrozenTrial,
    TrialState,
)
from hpo_plugins.exceptions import (
    ConfigurationError,
)

if TYPE_CHECKING:
    from hpo_plugins._run_settings import RunSettings
    from hpo_plugins.study import Study


__all__ = ["progress"]


def _bar_class() -> Any:
    """tqdm's widget bar in a notebook that has ``ipywidgets``, else its text bar: without
    them ``tqdm.auto`` printed "IProgress not found" into the cell (a TqdmWarning, an error
    under ``-W error``) before falling back to text itself."""
    import importlib.util

    if importlib.util.find_spec("ipywidgets") is None:
        from tqdm import tqdm

        return tqdm
    from tqdm.auto import tqdm as auto

    return auto


class _Progress:
    """A tqdm bar showing trials done and the best value so far."""

    def __init__(self, study: Study, total: int | None, initial: int = 0, *,
                 counts_failures: bool = True) -> None:
        tqdm = _bar_class()
        self._bar = tqdm(total=total, initial=initial, desc=study.study_name, unit="trial")
        #: False when the total is ``max_trials``, toward which failed trials do not count
        self._counts_failures = counts_failures

    def update(self, study: Study, frozen: FrozenTrial) -> None:
        # the best first: update() draws the bar, with the postfix as it is then
        with contextlib.suppress(ConfigurationError):  # nothing completed yet
            self._bar.set_postfix(best=f"{study.best_value:.6g}", refresh=False)
        if self._counts_failures or frozen.state is not TrialState.FAIL:
            self._bar.update(1)

    def add_to_total(self, n: int) -> None:
        """Expect ``n`` more (or, negative, fewer) trials than the budget: a parallel run
        whose workers died reports their trials as FAIL and may run replacements."""
        if self._bar.total is not None and n and self._counts_failures:
            self._bar.total = max(self._bar.n, self._bar.total + n)
            self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


def progress(study: Study, settings: RunSettings) -> _Progress | None:
    """The progress bar for this run, or None when it is off.

    With ``max_trials`` alone the bar counts the study's trials toward it, starting from those
    it already holds (a resumed run that adds the last one shows 5/5, not 1/5), failed trials
    left out, as ``max_trials`` leaves them out; with ``n_trials`` it counts this call's
    trials, failed ones too.
    """
    if not settings.show_progress_bar:
        return None
    initial = 0
    toward_max = settings.n_trials is None and settings.max_trials is not None
    if toward_max:
        assert settings.max_trials is not None
        counted = [s for s in TrialState if s is not TrialState.FAIL]  # failures do not count
        initial = min(study.storage.count_trials(study.study_id, counted), settings.max_trials)
    return _Progress(study, settings.budget, initial, counts_failures=not toward_max)
