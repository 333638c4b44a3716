"""TensorBoard's own server, started without TensorFlow.

``python -m hpo_plugins.tensorboard._server ARGS`` runs ``tensorboard ARGS`` after telling the
``tensorboard`` package to use its built-in TensorFlow stub (its ``tensorboard.compat.notf``
switch, the mode it runs in when TensorFlow is not installed). The HParams, Scalars and Time
Series dashboards need nothing more, and the server starts in seconds instead of paying
TensorFlow's import. Run plain ``tensorboard --logdir DIR`` for plugins that need TensorFlow.
"""

from __future__ import annotations

import sys
import types

__all__ = ["main", "server_command"]


def server_command(logdir: str, *, host: str = "127.0.0.1", port: int = 6006) -> list[str]:
    """The command line that serves ``logdir`` on ``host:port`` (a list for ``subprocess``).

    ``--reload_multifile`` makes the (fallback) Python loader follow every process's event file
    in a run, not only the newest one. ``-P`` keeps the working directory off ``sys.path``, so a
    user's ``http.py`` or ``logging.py`` there cannot shadow the standard library the server
    imports.
    """
    return [sys.executable, "-P", "-m", __name__, "--logdir", logdir, "--host", host,
            "--port", str(port), "--reload_multifile", "true"]


def main(argv: list[str] | None = None) -> None:
    """Run the TensorBoard server with ``argv`` (default: this process's arguments)."""
    sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
    from tensorboard.main import run_main

    sys.argv = ["tensorboard", *(sys.argv[1:] if argv is None else argv)]
    run_main()


if __name__ == "__main__":
    main()
