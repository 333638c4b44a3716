"""``hpo_plugins.plotting``: where the parallel-coordinates plot puts each trial's values."""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from typing import Any

import pytest

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins.exceptions import ConfigurationError
from hpo_plugins.plotting import plot_parallel_coordinates

pytest.importorskip("matplotlib")


def _study(kind: Any, values: tuple[float, ...]) -> hpo.Study:
    """A study of one parameter ``lr``, one COMPLETE trial per value, in that order."""
    study = hpo.create_study({"lr": kind}, storage=":memory:")
    for value in values:
        study.enqueue({"lr": value})
    study.optimize(lambda p: p["lr"], n_trials=len(values))
    assert [t.params["lr"] for t in study.trials] == list(values)
    return study


def _heights(figure: Any) -> list[float]:
    """Where each trial's line crosses the parameter axis (x = 0), by trial, in [0, 1]."""
    lines = [line for line in figure.axes[0].lines if list(line.get_xdata()) == [0, 1]]
    return [float(line.get_ydata()[0]) for line in lines]  # not the vertical axis lines


def test_a_zero_on_a_log_axis_sits_at_the_bottom_below_the_positive_values() -> None:
    # qloguniform rounds small values to 0, which has no logarithm: it was drawn where 1 is.
    kind = hp.qloguniform("lr", math.log(0.001), math.log(1), 0.01)
    figure = plot_parallel_coordinates(_study(kind, (0.0, 0.01, 0.1, 1.0)))
    zero, low, middle, high = _heights(figure)
    assert zero == 0.0 < low < middle < high == 1.0
    assert middle - low == pytest.approx(high - middle)  # 0.01, 0.1, 1: even steps in log
    assert {"0", "0.01", "1"} <= {text.get_text() for text in figure.axes[0].texts}



def _labels(figure: Any) -> dict[str, float]:
    """The parameter axis' labels (x < 0.5) and the heights they are drawn at."""
    return {text.get_text(): float(text.get_position()[1]) for text in figure.axes[0].texts
            if text.get_position()[0] < 0.5}


def test_one_distinct_value_is_labelled_where_it_is_drawn() -> None:
    kind = hp.qloguniform("lr", math.log(0.001), math.log(1), 0.01)
    figure = plot_parallel_coordinates(_study(kind, (0.0, 0.1, 0.1)))
    zero, first, second = _heights(figure)
    assert zero == 0.0 and first == second
    assert _labels(figure) == {"0": -0.04, "0.1": pytest.approx(first)}  # "0" under the axis


def test_slices_one_panel_per_parameter_on_its_own_scale(nested_space: dict[str, Any]) -> None:
    from hpo_plugins.plotting import plot_slice

    study = hpo.minimize(lambda p: p["lr"], nested_space, n_trials=12, storage=":memory:",
                         seed=0, sampler=hpo.samplers.RandomSampler())
    figure = plot_slice(study)
    panels = {axes.get_title(): axes for axes in figure.axes if axes.get_visible()
              and axes.get_title()}
    active = {label: sum(label in t.params for t in study.trials)
              for label in ("lr", "net", "mlp_layers", "mlp_dropout", "cnn_filters")}
    assert set(panels) == {f"{label} ({n} trial{'s' * (n != 1)})" for label, n in active.items()}
    lr = panels[f"lr ({active['lr']} trials)"]
    assert lr.get_xscale() == "log"  # a loguniform
    points = lr.collections[0].get_offsets()
    assert sorted(points[:, 0]) == pytest.approx(sorted(t.params["lr"] for t in study.trials))
    assert list(points[:, 1]) == pytest.approx([t.value for t in study.trials])
    filters = panels[f"cnn_filters ({active['cnn_filters']} trials)"]
    assert [t.get_text() for t in filters.get_xticklabels()] == ["16", "32", "64"]
    assert any(axes.get_label() == "<colorbar>" for axes in figure.axes)


def test_slices_of_a_study_without_completed_trials_say_so() -> None:
    from hpo_plugins.plotting import plot_slice

    study = hpo.create_study({"x": hp.uniform("x", 0, 1)}, storage=":memory:")
    figure = plot_slice(study)
    assert [text.get_text() for text in figure.axes[0].texts] == ["No completed trial yet."]


def test_slices_keep_their_scale_beside_a_never_active_panel_and_thin_many_options() -> None:
    from hpo_plugins.plotting import plot_slice

    space = {"x": hp.uniform("x", 0, 1), "c": hp.choice("c", list(range(200))),
             "net": hp.choice("net", [{"a": hp.uniform("a", 0, 1)},
                                      {"b": hp.uniform("b", 0, 1)}])}
    study = hpo.create_study(space, storage=":memory:")
    for i in range(6):  # "b" is never active
        study.enqueue({"x": i / 10, "c": 3 * i, "net": {"a": 0.5}})
    study.optimize(lambda p: p["x"], n_trials=6)
    figure = plot_slice(study)
    panels = {axes.get_title().split(" ")[0]: axes for axes in figure.axes
              if axes.get_title()}
    assert [t.get_text() for t in panels["b"].texts] == ["never active"]
    assert len(panels["x"].get_yticks()) > 2  # the shared y axis kept its ticks
    labels = [t.get_text() for t in panels["c"].get_xticklabels()]
    assert len(labels) == 20 and labels[:2] == ["0", "10"]


def test_slices_without_a_recorded_space_say_so() -> None:
    from hpo_plugins.plotting import plot_slice

    study = hpo.create_study(storage=":memory:")  # no space: trials recorded by hand
    trial = study.storage.create_trial(study.study_id, params={"x": 0.5})
    assert trial is not None
    study.storage.finish_trial(trial.trial_id, hpo.TrialState.COMPLETE, 1.0)
    figure = plot_slice(study)
    assert [t.get_text() for t in figure.axes[0].texts] == [
        "The study has no recorded search space."]


_PLOTS = ["plot_optimization_history", "plot_intermediate_values", "plot_slice",
          "plot_parallel_coordinates", "plot_param_importances"]


@pytest.mark.parametrize("name", _PLOTS)
@pytest.mark.parametrize("study", [None, "my-study"])
def test_every_plot_refuses_what_is_not_a_study(name: str, study: Any) -> None:
    import hpo_plugins.plotting as plotting

    with pytest.raises(ConfigurationError, match=r"Expected `study` to be a Study.*Received: "
                                                 r"study=.*hpo.load_study"):
        getattr(plotting, name)(study)


def test_save_plots_checks_the_study_before_creating_the_folder(tmp_path: Path) -> None:
    from hpo_plugins.plotting import save_plots

    with pytest.raises(ConfigurationError, match=r"Received: study='my-study' \(of type str\)"):
        save_plots("my-study", tmp_path / "plots")
    assert not (tmp_path / "plots").exists()


@pytest.mark.parametrize(("out_dir", "message"), [
    (None, r"Expected `out_dir` to be a folder path \(str or pathlib.Path\).*Received: "
           r"out_dir=None \(of type NoneType\)"),
    (3, r"Received: out_dir=3 \(of type int\)"),
    ("", r"Received: out_dir='' .*'\.' for the working directory"),
    ("afile", r"Received: out_dir='.*afile', which is an existing file\. Pass another path"),
    ("afile/plots", r"can create and write\. Received: out_dir='.*afile/plots', which failed"),
])
def test_save_plots_refuses_a_folder_it_cannot_use(tmp_path: Path, out_dir: Any,
                                                   message: str) -> None:
    from hpo_plugins.plotting import save_plots

    study = hpo.create_study({"x": hp.uniform("x", 0, 1)}, storage=":memory:")
    (tmp_path / "afile").write_text("")
    path = str(tmp_path / out_dir) if isinstance(out_dir, str) and out_dir else out_dir
    with pytest.raises(ConfigurationError, match=message):
        save_plots(study, path)


@pytest.mark.parametrize("name", ["plot_optimization_history", "plot_intermediate_values",
                                  "plot_parallel_coordinates", "plot_slice",
                                  "plot_param_importances"])
def test_every_plot_shows_as_a_picture_in_a_notebook(name: str) -> None:
    """Made without pyplot, a figure showed in a fresh notebook as '<Figure size 800x450 with 1
    Axes>' until %matplotlib inline: IPython shows what _repr_png_ returns."""
    import matplotlib.figure

    study = hpo.minimize(lambda p: p["x"] + p["y"], {"x": hp.uniform("x", 0, 1),
                                                     "y": hp.uniform("y", 0, 1)},
                         n_trials=6, storage=":memory:", seed=0, show_progress_bar=False)
    figure = getattr(hpo.plotting, name)(study)
    assert isinstance(figure, matplotlib.figure.Figure)
    png = figure._repr_png_()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 2000
    assert repr(figure).startswith("<Figure size ")
    copy = pickle.loads(pickle.dumps(figure))  # it pickled before the class came
    assert type(copy) is type(figure) and len(copy.axes) == len(figure.axes)
