"""Whether this process is an interactive session (a Jupyter kernel, an IPython or Python
prompt), and which notebook it runs: a few defaults differ there.

Example:
    >>> in_notebook(), notebook_name()  # a doctest is no notebook
    (False, None)
"""

from __future__ import annotations

import os
import sys

__all__ = ["in_notebook", "interactive", "notebook_name"]


def in_notebook() -> bool:
    """True in a Jupyter kernel (ipykernel's shell), where stderr is no terminal but a cell's
    output shows a progress bar well."""
    return _is_kernel(_shell())


def interactive() -> bool:
    """True at a prompt or in a notebook: the process outlives one run, so worker processes
    kept for the next run would keep modules the user has edited since."""
    return hasattr(sys, "ps1") or _shell() is not None


def notebook_name() -> str | None:
    """The file name of the running notebook where the front end says it (Jupyter Server 2's
    ``JPY_SESSION_NAME``, VS Code's ``__vsc_ipynb_file__``), else None."""
    shell = _shell()
    if not _is_kernel(shell):
        return None
    path = getattr(shell, "user_ns", {}).get("__vsc_ipynb_file__") or os.environ.get(
        "JPY_SESSION_NAME")
    return os.path.basename(str(path)) if path else None


def _shell() -> object | None:
    """IPython's running shell, without importing IPython where it is not loaded."""
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    return get() if callable(get) else None


def _is_kernel(shell: object | None) -> bool:
    """Whether ``shell`` is ipykernel's shell, or a subclass of it (Colab's, Spyder's)."""
    return shell is not None and any(c.__name__ == "ZMQInteractiveShell"
                                     for c in type(shell).__mro__)
