"""At a prompt or in a notebook (a notebook user's review): the reused workers do not keep a
module the user edited, and a notebook gets a progress bar and a study name of its own."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins.samplers import RandomSampler

SPACE = {"x": hp.uniform("x", 0.0, 1.0)}


def _write(module: Path, value: float) -> None:
    module.write_text(textwrap.dedent(f"""
        def train(params):
            return {value}
    """), encoding="utf-8")


def test_an_edited_module_runs_its_new_code_in_the_workers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """joblib's reused workers kept the module they had imported: after the user edited and
    reloaded it, n_jobs=2 still ran the old code (1.0) while n_jobs=1 ran the new (2.0)."""
    monkeypatch.setattr(sys, "ps1", ">>> ", raising=False)  # a prompt
    module = tmp_path / "nb_helpers_edit.py"
    _write(module, 1.0)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # the workers import it by name
    import nb_helpers_edit  # type: ignore[import-not-found]

    url = f"sqlite:///{tmp_path}/e.db"
    first = hpo.minimize(nb_helpers_edit.train, SPACE, n_trials=2, n_jobs=2, storage=url,
                         study_name="v1", sampler=RandomSampler())
    assert [t.value for t in first.trials] == [1.0, 1.0]
    _write(module, 2.0)
    importlib.reload(nb_helpers_edit)
    second = hpo.minimize(nb_helpers_edit.train, SPACE, n_trials=2, n_jobs=2, storage=url,
                          study_name="v2", sampler=RandomSampler())
    assert [t.value for t in second.trials] == [2.0, 2.0]
    sys.modules.pop("nb_helpers_edit", None)


@pytest.mark.timeout(120)
def test_two_runs_from_threads_at_a_prompt_both_finish(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first run to end stopped the pool through loky's get_reusable_executor(), which held
    loky's lock while the other run's pool waited for it: both hung, every time."""
    import threading

    monkeypatch.setattr(sys, "ps1", ">>> ", raising=False)
    studies = [hpo.create_study(SPACE, storage=f"sqlite:///{tmp_path}/t{i}.db",
                                sampler=RandomSampler()) for i in range(2)]
    errors: list[BaseException] = []

    def run(study: hpo.Study, n: int) -> None:
        try:
            study.optimize(_half_second, n_trials=n, n_jobs=2)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(study, n)) for study, n in zip(studies, (2, 6))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(100)
    assert not any(thread.is_alive() for thread in threads) and not errors
    assert [len(study.trials) for study in studies] == [2, 6]


def _half_second(params: dict[str, float]) -> float:
    import time

    time.sleep(0.5)
    return params["x"]


class ZMQInteractiveShell:
    """Stands for ipykernel's shell (no Jupyter kernel runs in the tests)."""

    def __init__(self, notebook: str | None = None) -> None:
        self.user_ns = {} if notebook is None else {"__vsc_ipynb_file__": notebook}


def _in_kernel(monkeypatch: pytest.MonkeyPatch, shell: ZMQInteractiveShell) -> None:
    stub = type(sys)("IPython")
    stub.get_ipython = lambda: shell  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", stub)


def test_a_notebook_gets_a_progress_bar_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel's stderr is no terminal: the bar was off and a long cell printed nothing."""
    from hpo_plugins._run_settings import RunSettings

    def bar(given: bool | None) -> bool:
        return RunSettings.check(n_trials=1, max_trials=None, timeout=None, catch=(),
                                 callbacks=None, show_progress_bar=given,
                                 finite=False).show_progress_bar

    assert bar(None) is False  # pytest's stderr: no terminal
    _in_kernel(monkeypatch, ZMQInteractiveShell())
    assert bar(None) is True and bar(False) is False


def test_two_notebooks_get_two_studies(monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel's __main__ has no file: every notebook of a folder shared one derived name, and
    notebook B resumed notebook A's trials and reported A's best."""
    from hpo_plugins._api import default_study_name

    def objective(params: dict[str, float]) -> float:
        return params["x"]

    objective.__module__ = "__main__"
    monkeypatch.setitem(sys.modules, "__main__", type(sys)("__main__"))  # a kernel's: no file
    names = set()
    for notebook in ("/work/a.ipynb", "/work/b.ipynb", "/elsewhere/a.ipynb"):
        _in_kernel(monkeypatch, ZMQInteractiveShell(notebook))
        names.add(default_study_name(objective, "f00d"))
    assert len(names) == 2  # a.ipynb in two folders is one notebook, as a script would be
    monkeypatch.setenv("JPY_SESSION_NAME", "/work/c.ipynb")  # Jupyter Server 2's variable
    _in_kernel(monkeypatch, ZMQInteractiveShell())
    assert default_study_name(objective, "f00d") not in names


class ColabShell(ZMQInteractiveShell):
    """Colab's and Spyder's kernels run a subclass of ipykernel's shell."""


def test_a_kernel_whose_shell_is_a_subclass_is_a_notebook(monkeypatch: pytest.MonkeyPatch) -> None:
    from hpo_plugins._interactive import in_notebook, interactive

    assert not in_notebook()
    _in_kernel(monkeypatch, ColabShell("/content/x.ipynb"))
    assert in_notebook() and interactive()
