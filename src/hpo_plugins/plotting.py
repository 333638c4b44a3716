"""Static plots of a study with matplotlib (``pip install 'hpo_plugins[plot]'``).

Five figures: the optimisation history (each trial's value and the best so far), parallel
coordinates (one line per completed trial across every parameter, coloured by value), slices
(each parameter against the value, one panel each), the intermediate curves (every reported
value, by state) and the parameters' importances (see :mod:`hpo_plugins.importance`). The
figures are built without ``pyplot``, so no GUI backend or global figure state is involved;
:func:`save_plots` writes them as PNG.

Example:
    >>> import hpo_plugins as hpo
    >>> from hpo_plugins.plotting import save_plots
    >>> study = hpo.minimize(lambda p: p["x"] ** 2, {"x": hpo.hp.uniform("x", -1, 1)},
    ...                      n_trials=5, storage=":memory:")
    >>> paths = save_plots(study, "plots")  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import io
import math
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hpo_plugins._dataframe import space_description
from hpo_plugins._frozen import Direction, FrozenTrial, TrialState
from hpo_plugins._require import require_study
from hpo_plugins.exceptions import ConfigurationError, missing_dependency

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from hpo_plugins.study import Study

__all__ = [
    "plot_intermediate_values",
    "plot_optimization_history",
    "plot_parallel_coordinates",
    "plot_param_importances",
    "plot_slice",
    "save_plots",
]

_STATE_COLORS = {TrialState.COMPLETE: "tab:blue", TrialState.PRUNED: "tab:orange",
                 TrialState.FAIL: "tab:red", TrialState.RUNNING: "tab:gray"}
_FIGSIZE = (8.0, 4.5)
#: On a log-scaled parallel-coordinates axis that holds zeros: where the positive values start.
_ZERO_GAP = 0.15


def save_plots(study: Study, out_dir: str | os.PathLike[str]) -> list[str]:
    """Write ``history.png``, ``parallel_coordinates.png``, ``slice.png``,
    ``intermediate_values.png`` and ``param_importances.png`` into ``out_dir`` (created if
    missing).

    Returns:
        The paths written.

    Raises:
        ConfigurationError: ``study`` is not a Study, or ``out_dir`` is not a path, names an
            existing file or cannot be created; checked before any folder is created.
        MissingDependencyError: matplotlib is not installed.
    """
    _check_study(study)
    _make_out_dir(out_dir)
    figures = {"history": plot_optimization_history(study),
               "parallel_coordinates": plot_parallel_coordinates(study),
               "slice": plot_slice(study),
               "intermediate_values": plot_intermediate_values(study),
               "param_importances": plot_param_importances(study)}
    paths = []
    for name, figure in figures.items():
        path = os.path.join(out_dir, f"{name}.png")
        figure.savefig(path, dpi=110)
        paths.append(path)
    return paths


def _check_study(study: Any) -> None:
    """Refuse anything but a Study (a study name, a storage URL) with the fix, instead of an
    ``AttributeError`` from inside a plot."""
    require_study(study, "a Study, as hpo.create_study, hpo.load_study or hpo.minimize return",
                  "For a stored study, pass hpo.load_study(study_name, storage=...).")


def _make_out_dir(out_dir: Any) -> None:
    """Create ``out_dir`` for :func:`save_plots`, or say why it cannot hold the plots: not a
    path, an existing file, or a folder this process cannot create."""
    if not isinstance(out_dir, (str, os.PathLike)) or not os.fspath(out_dir):
        raise ConfigurationError(
            f"Expected `out_dir` to be a folder path (str or pathlib.Path) for the PNG files. "
            f"Received: out_dir={out_dir!r} (of type {type(out_dir).__name__}). Pass a folder "
            f"such as 'plots' (created if missing), or '.' for the working directory.")
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise ConfigurationError(
            f"Expected `out_dir` to be a folder for the PNG files (created if missing). "
            f"Received: out_dir={os.fspath(out_dir)!r}, which is an existing file. Pass another "
            f"path, or move the file away.")
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(
            f"Expected `out_dir` to be a folder this process can create and write. Received: "
            f"out_dir={os.fspath(out_dir)!r}, which failed: {exc}. Pass another path.") from None


def _figure(title: str) -> tuple[Figure, Axes]:
    figure = _new_figure(_FIGSIZE)
    axes = figure.add_subplot()
    axes.set_title(title)
    return figure, axes


def _new_figure(figsize: tuple[float, float]) -> Figure:
    """A matplotlib figure made without pyplot (no GUI backend, nothing global), that a
    notebook still shows as a picture (see :func:`_shown_figure_class`)."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise missing_dependency("matplotlib", "plot") from exc
    del Figure  # imported to say what is missing; the figure is of ShownFigure, its subclass
    figure: Figure = _shown_figure_class()(figsize=figsize, layout="constrained")
    return figure


@functools.cache
def _shown_figure_class() -> type:
    """matplotlib's ``Figure`` with a ``_repr_png_``: a figure made without pyplot showed in a
    fresh notebook as its text, ``<Figure size 800x450 with 1 Axes>``, until ``%matplotlib
    inline``. Where the inline backend is on, its own display of figures comes first, so
    nothing shows twice. Built on first use (matplotlib is imported only then) and reachable
    as ``hpo_plugins.plotting.ShownFigure`` (see ``__getattr__`` below), so figures pickle."""
    from matplotlib.figure import Figure

    class ShownFigure(Figure):
        def _repr_png_(self) -> bytes:
            buffer = io.BytesIO()
            self.savefig(buffer, format="png")
            return buffer.getvalue()

    ShownFigure.__name__ = "Figure"  # its repr: <Figure size 800x450 with 1 Axes>
    ShownFigure.__qualname__ = "ShownFigure"  # what pickle looks up in this module
    ShownFigure.__module__ = __name__
    return ShownFigure


def __getattr__(name: str) -> Any:
    if name == "ShownFigure":  # for pickle: the class is built when matplotlib is imported
        return _shown_figure_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _empty(axes: Axes, text: str) -> None:
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes)
    axes.set_xticks([])
    axes.set_yticks([])


# -- parameter importances --------------------------------------------------------------------


def plot_param_importances(study: Study) -> Figure:
    """One horizontal bar per parameter: its share of what explains the completed results
    (:func:`hpo_plugins.importance.param_importances`), the most important on top."""
    _check_study(study)
    from hpo_plugins.importance import MIN_TRIALS, param_importances

    figure, axes = _figure(f"Parameter importances: {study.study_name}")
    done = study.get_trials(TrialState.COMPLETE)
    finite = [t for t in done if t.value is not None and math.isfinite(t.value)]
    if len(finite) < MIN_TRIALS:
        _empty(axes, f"Importances need {MIN_TRIALS} completed trials; the study has "
                     f"{len(finite)}.")
        return figure
    importances = param_importances(study, trials=finite)  # the trials read above
    labels = list(importances)[::-1]
    axes.barh(labels, [importances[label] for label in labels], color="tab:blue")
    axes.set_xlim(0.0, 1.0)
    axes.set_xlabel(f"importance (share of the ranking of {len(finite)} completed trials "
                    f"explained)")
    return figure


# -- optimisation history ---------------------------------------------------------------------


def plot_optimization_history(study: Study) -> Figure:
    """Each finished trial's value by trial number, and the best value so far."""
    _check_study(study)
    figure, axes = _figure(f"Optimisation history: {study.study_name}")
    trials = [t for t in study.trials if t.value is not None]
    if not trials:
        _empty(axes, "No trial has a value yet.")
        return figure
    for state in (TrialState.COMPLETE, TrialState.PRUNED):
        shown = [t for t in trials if t.state is state]
        if shown:
            axes.scatter([t.number for t in shown], [float(t.value or 0.0) for t in shown], s=18,
                         color=_STATE_COLORS[state], label=f"{state.value.lower()} trials")
    numbers, best = _best_so_far(trials, study.direction)
    if numbers:
        last = max(t.number for t in trials)
        axes.step([*numbers, last], [*best, best[-1]], where="post", color="black",
                  label="best so far")
    axes.set_xlabel("trial number")
    axes.set_ylabel(f"value ({study.direction.value})")
    axes.legend(loc="best", fontsize="small")
    return figure


def _best_so_far(trials: Sequence[FrozenTrial],
                 direction: Direction) -> tuple[list[int], list[float]]:
    numbers: list[int] = []
    best: list[float] = []
    for trial in sorted(trials, key=lambda t: t.number):
        if trial.state is not TrialState.COMPLETE or trial.value is None:
            continue
        value = trial.value if not best or direction.better(trial.value, best[-1]) else best[-1]
        numbers.append(trial.number)
        best.append(value)
    return numbers, best


# -- intermediate values ----------------------------------------------------------------------


def plot_intermediate_values(study: Study) -> Figure:
    """Every trial's reported curve (step, value), coloured by its state."""
    _check_study(study)
    figure, axes = _figure(f"Intermediate values: {study.study_name}")
    curves = [t for t in study.trials if t.intermediate_values]
    if not curves:
        _empty(axes, "No trial reported intermediate values.")
        return figure
    labelled: set[TrialState] = set()
    for trial in curves:
        steps = sorted(trial.intermediate_values)
        color = _STATE_COLORS.get(trial.state, "tab:gray")
        label = None if trial.state in labelled else trial.state.value.lower()
        labelled.add(trial.state)
        axes.plot(steps, [trial.intermediate_values[s] for s in steps], color=color,
                  alpha=0.7, linewidth=1.2, marker="." if len(steps) < 30 else None,
                  label=label)
    axes.set_xlabel("step")
    axes.set_ylabel(f"reported value ({study.metric})")
    axes.legend(loc="best", fontsize="small")
    return figure


# -- slices -----------------------------------------------------------------------------------

#: Panels per row of the slice plot.
_SLICE_COLUMNS = 3
#: Most option labels under one slice panel (a choice of more shows every k-th).
_MAX_OPTION_LABELS = 20


def plot_slice(study: Study) -> Figure:
    """One panel per parameter: every COMPLETE trial's value against that parameter, coloured
    by trial number (later trials darker).

    It shows where the good values of each parameter lie and whether the search closed in on
    them. A log-scaled parameter gets a log axis (unless a value is 0), a choice one position
    per option; a conditional parameter's panel holds the trials where it was active, and its
    title says how many.
    """
    _check_study(study)
    trials = [t for t in study.get_trials([TrialState.COMPLETE]) if t.value is not None]
    params = space_description(study)
    if not trials or not params:
        figure, axes = _figure(f"Slices: {study.study_name}")
        _empty(axes, "No completed trial yet." if not trials
               else "The study has no recorded search space.")
        return figure
    columns = min(_SLICE_COLUMNS, len(params))
    rows = math.ceil(len(params) / columns)
    figure = _new_figure((3.6 * columns, 2.9 * rows))
    figure.suptitle(f"Slices: {study.study_name}")
    grid = figure.subplots(rows, columns, squeeze=False, sharey=True)
    last = max(t.number for t in trials)
    shown = None
    for axes, param in zip(grid.flat, params):
        shown = _slice_panel(axes, param, trials, last) or shown
    for axes in list(grid.flat)[len(params):]:
        axes.set_visible(False)
    for row in grid:
        row[0].set_ylabel(f"value ({study.direction.value})")
    if shown is not None:
        figure.colorbar(shown, ax=grid, label="trial number")
    return figure


def _slice_panel(axes: Axes, param: Mapping[str, Any], trials: Sequence[FrozenTrial],
                 last: int) -> Any:
    """Draw one parameter's panel; return the scatter (for the colour bar), or None if no
    trial had the parameter active."""
    label = str(param["label"])
    active = [t for t in trials if label in t.params]
    axes.set_title(f"{label} ({len(active)} trial{'s' * (len(active) != 1)})",
                   fontsize="small")
    if not active:  # the panels share their y axis: only this panel's x ticks go
        axes.text(0.5, 0.5, "never active", ha="center", va="center", transform=axes.transAxes)
        axes.set_xticks([])
        return None
    xs = [float(t.params[label]) for t in active]
    options = list(param.get("options") or [])
    if options:
        every = math.ceil(len(options) / _MAX_OPTION_LABELS)  # many options: every k-th label
        shown = range(0, len(options), every)
        axes.set_xticks(list(shown), [str(options[i])[:12] for i in shown],
                        rotation=30, ha="right", fontsize="x-small")
        axes.set_xlim(-0.5, len(options) - 0.5)
    elif str(param["kind"]) in ("loguniform", "qloguniform", "lognormal", "qlognormal") and (
            min(xs) > 0):
        axes.set_xscale("log")
    axes.tick_params(labelsize="x-small")
    return axes.scatter(xs, [float(t.value or 0.0) for t in active],
                        c=[t.number for t in active], cmap="Blues", vmin=0, vmax=max(last, 1),
                        s=14, edgecolors="black", linewidths=0.3)


# -- parallel coordinates ---------------------------------------------------------------------


def plot_parallel_coordinates(study: Study) -> Figure:
    """One line per COMPLETE trial through every parameter axis and the value axis.

    Numeric axes are scaled to [0, 1] between the smallest and largest value seen (log-scaled
    parameters in log space); a choice places its options evenly (its tick labels show the first
    and last option). A trial's line passes over the axes of its inactive parameters. A value of
    0 on a log-scaled axis (``qloguniform`` and ``qlognormal`` round to it) has no logarithm: it
    sits at the bottom, under a ``0`` label, below the positive values.
    """
    _check_study(study)
    figure, axes = _figure(f"Parallel coordinates: {study.study_name}")
    trials = [t for t in study.get_trials([TrialState.COMPLETE]) if t.value is not None]
    params = space_description(study)
    if not trials or not params:
        _empty(axes, "No completed trial yet.")
        return figure
    columns = [_ParamAxis(p, trials) for p in params]
    values = [float(t.value or 0.0) for t in trials]
    low, high = min(values), max(values)
    colormap = _colormap(study.direction)
    for trial, value in zip(trials, values):
        ys = [c.position(trial.params) for c in columns] + [_scale(value, low, high)]
        shown = [(x, y) for x, y in enumerate(ys) if not math.isnan(y)]
        axes.plot(*zip(*shown), color=colormap(_scale(value, low, high)), alpha=0.75)
    _label_axes(axes, columns, low, high)
    _colorbar(figure, axes, colormap, low, high)
    return figure


class _ParamAxis:
    """Where a parameter's values go on its vertical axis, in [0, 1].

    On a log-scaled axis that also holds zeros, the zeros take the bottom and the positive
    values the part above :data:`_ZERO_GAP`, so that log and linear numbers never share a scale.
    """

    def __init__(self, param: Mapping[str, Any], trials: Sequence[FrozenTrial]) -> None:
        self.label = str(param["label"])
        self.options = list(param.get("options") or [])
        self.log = str(param["kind"]) in ("loguniform", "qloguniform", "lognormal",
                                          "qlognormal")
        values = [float(t.params[self.label]) for t in trials if self.label in t.params]
        self.zeros = self.log and any(v <= 0 for v in values)
        seen = [self._raw(v) for v in values if v > 0 or not self.log]
        self.positive = bool(seen)
        if self.options:
            self.low, self.high = 0.0, float(max(len(self.options) - 1, 1))
        else:
            self.low, self.high = (min(seen), max(seen)) if seen else (0.0, 1.0)

    def _raw(self, number: float) -> float:
        return math.log10(number) if self.log else number

    def position(self, flat: Mapping[str, Any]) -> float:
        if self.label not in flat:
            return math.nan  # inactive in this trial
        number = float(flat[self.label])
        if not self.zeros:
            return _scale(self._raw(number), self.low, self.high)
        if number <= 0:
            return 0.0
        return _ZERO_GAP + (1 - _ZERO_GAP) * _scale(self._raw(number), self.low, self.high)

    def ticks(self) -> list[tuple[float, str]]:
        """``(position, label)`` of the axis' labelled values, bottom first."""
        if self.options:
            return [(0.0, str(self.options[0])), (1.0, str(self.options[-1]))]
        low, high = (10 ** self.low, 10 ** self.high) if self.log else (self.low, self.high)
        bottom = _ZERO_GAP if self.zeros else 0.0
        if self.low == self.high:  # one distinct value: drawn (and labelled) half-way up
            shown = [(bottom + (1 - bottom) * 0.5, f"{low:.3g}")] if self.positive else []
        else:
            shown = [(bottom, f"{low:.3g}"), (1.0, f"{high:.3g}")] if self.positive else []
        return [(0.0, "0"), *shown] if self.zeros else shown


def _scale(value: float, low: float, high: float) -> float:
    return 0.5 if high == low else (value - low) / (high - low)


def _colormap(direction: Direction) -> Any:
    from matplotlib import colormaps

    # the best trials are drawn darkest in either direction
    return colormaps["viridis" if direction is Direction.MINIMIZE else "viridis_r"]


def _label_axes(axes: Axes, columns: Sequence[_ParamAxis], low: float, high: float) -> None:
    n = len(columns) + 1
    for x in range(n):
        axes.axvline(x, color="black", linewidth=0.8)
    for x, column in enumerate(columns):
        for y, text in column.ticks():
            _tick(axes, x, y, text)
    _tick(axes, n - 1, 0.0, f"{low:.3g}")
    _tick(axes, n - 1, 1.0, f"{high:.3g}")
    axes.set_xticks(range(n), [c.label for c in columns] + ["value"], rotation=30, ha="right")
    axes.set_yticks([])
    axes.set_ylim(-0.12, 1.12)
    axes.set_xlim(-0.3, n - 0.7)


def _tick(axes: Axes, x: float, y: float, text: str) -> None:
    """Label the value at height ``y`` of axis ``x``: under the bottom, over the top, else
    beside the axis."""
    if y <= 0:
        axes.annotate(text, (x, -0.04), ha="center", va="top", fontsize="x-small")
    elif y >= 1:
        axes.annotate(text, (x, 1.04), ha="center", va="bottom", fontsize="x-small")
    else:
        axes.annotate(text, (x + 0.03, y), ha="left", va="center", fontsize="x-small")


def _colorbar(figure: Figure, axes: Axes, colormap: Any, low: float, high: float) -> None:
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    mappable = ScalarMappable(norm=Normalize(low, high), cmap=colormap)
    figure.colorbar(mappable, ax=axes, label="value")
