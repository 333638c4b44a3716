"""``hpo-plugins tensorboard``: TensorBoard on a study's logdir."""

from __future__ import annotations

import argparse
import contextlib
import errno
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from types import FrameType
from typing import Any

from hpo_plugins.cli._base import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    CLIError,
    Command,
    Terminated,
    add_study_argument,
    echo,
    exit_status,
    open_storage,
    stop_signals_raise,
)

__all__ = ["TENSORBOARD"]

_logger = logging.getLogger(__name__)

_STOP_TIMEOUT_S = 10.0
_MAX_PORT = 65535


def _configure(parser: argparse.ArgumentParser) -> None:
    add_study_argument(parser)
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1, this machine only)")
    parser.add_argument("--port", type=_port, default=6006,
                        help=f"port, 1 to {_MAX_PORT} (default: 6006)")


def _port(text: str) -> int:
    """The ``--port`` argument: a TCP port number (a bad one is a usage error, exit code 2)."""
    port = int(text) if text.strip().isdigit() else None
    if port is None or not 1 <= port <= _MAX_PORT:
        raise argparse.ArgumentTypeError(
            f"expected a port number from 1 to {_MAX_PORT}, got {text!r} (0, 'any free port', "
            f"is not offered: the dashboard's URL is printed before TensorBoard starts)")
    return port


def _run(args: argparse.Namespace) -> int:
    with open_storage(args.storage) as store:
        logdir = store.get_study(store.get_study_id(args.study)).attrs.get("logdir")
    logdir = _check_logdir(args.study, logdir)
    if importlib.util.find_spec("tensorboard") is None:
        raise CLIError("TensorBoard is not installed. Install it with: "
                       "pip install 'hpo_plugins[tensorboard]'")
    from hpo_plugins.tensorboard._server import server_command

    _check_port_free(args.host, args.port)
    command = server_command(logdir, host=args.host, port=args.port)
    echo(f"TensorBoard for study {args.study!r} on {logdir}: "
         f"http://{args.host}:{args.port}/#hparams (Ctrl-C to stop)")
    sys.stdout.flush()  # before the server's own output
    code, stopped = _serve(command)
    if stopped is not None:  # the usual end: the server is stopped, as every command exits
        return stopped
    if code != EXIT_OK:
        how = f"was stopped by signal {-code}" if code < 0 else f"exited with code {code}"
        raise CLIError(f"TensorBoard {how} (its own messages are above).")
    return EXIT_OK


def _check_logdir(study: str, logdir: object) -> str:
    if not logdir:
        raise CLIError(f"study {study!r} has no logdir, so nothing was written for TensorBoard. "
                       f"Create studies with logdir='runs/{study}' (create_study, minimize), "
                       f"or hpo-plugins run --logdir runs/{study}.")
    if not os.path.isdir(str(logdir)):
        raise CLIError(f"the logdir of study {study!r} does not exist: {logdir}")
    return str(logdir)


def _check_port_free(host: str, port: int) -> None:
    """Fail before the URL is printed when something already listens on ``host:port``.

    Only a port in use is reported here; any other reason the address cannot be bound (a host
    name that does not resolve, a privileged port) is left to TensorBoard, which says why.

    Raises:
        CLIError: The port is in use.
    """
    # the family TensorBoard's server (werkzeug) binds: IPv6 only for a host written with ":"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, family,
                                                         socket.SOCK_STREAM)[0]
    except UnicodeError:  # not an OSError: "a..b" fails in the IDNA codec
        raise CLIError(f"--host {host!r} is not a host name or an address. Pass one such as "
                       f"127.0.0.1 (this machine only) or 0.0.0.0 (every interface).") from None
    except OSError as exc:
        _logger.debug("Could not resolve %s: %s", host, exc)
        return
    try:
        _bind(family, kind, address)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            _logger.debug("Could not check port %s on %s: %s", port, host, exc)
            return
        raise CLIError(f"port {port} on {host} is already in use (another TensorBoard?). Pass "
                       f"a free port with --port{_free_port_hint(family, kind, address)}."
                       ) from None


def _bind(family: int, kind: int, address: tuple[Any, ...]) -> None:
    """Bind a probe socket to ``address`` and let it go; OSError when that cannot be done."""
    with socket.socket(family, kind) as probe:
        # as servers do: a port whose last connection is closing (TIME_WAIT) counts as free
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)


def _free_port_hint(family: int, kind: int, address: tuple[Any, ...]) -> str:
    """``", e.g. --port 6008"``: the next port above (or, at the top, below) that was free
    when probed; "" when none of the next 50 is."""
    port = address[1]
    step = 1 if port < _MAX_PORT else -1
    for candidate in range(port + step, port + 51 * step, step):
        if not 1 <= candidate <= _MAX_PORT:
            break
        try:
            _bind(family, kind, (address[0], candidate, *address[2:]))
        except OSError:
            continue
        return f", e.g. --port {candidate}"
    return ""


def _serve(command: list[str]) -> tuple[int, int | None]:
    """Run the server until it exits or this process is stopped: the server's exit code, and
    this command's exit status when Ctrl-C (130), SIGTERM (143) or SIGHUP (129) stopped it
    (else None), as the exit-code table of ``hpo-plugins --help`` says for every command."""
    # Its own process group, so that stopping it also stops TensorBoard's data server.
    server = subprocess.Popen(command, start_new_session=True)
    with _sigterm_as_terminated():
        try:
            return server.wait(), None
        except KeyboardInterrupt:
            return EXIT_OK, EXIT_INTERRUPTED
        except Terminated as stopped:
            return EXIT_OK, exit_status(stopped)
        finally:
            _stop(server)


def _stop(server: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.wait(_STOP_TIMEOUT_S)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)  # whatever is left in the group
    server.wait()


@contextlib.contextmanager
def _sigterm_as_terminated() -> Iterator[None]:
    """Let ``kill`` (SIGTERM) and a closed terminal or dropped ssh session (SIGHUP) stop the
    server too, rather than orphan it: in a session of its own, the server never gets the
    terminal's SIGHUP, and it kept its port after this command was gone. A signal this
    process ignores (``nohup``) stays ignored."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise Terminated(signal.Signals(signum).name)

    with stop_signals_raise(interrupt):
        yield


TENSORBOARD = Command(
    name="tensorboard",
    summary="start TensorBoard on a study's logdir",
    description="Serve the study's logdir (recorded when it was created with logdir=) with "
                "TensorBoard, without importing TensorFlow; open the HPARAMS tab. Ctrl-C stops "
                "it. For plugins that need TensorFlow, run: tensorboard --logdir LOGDIR.",
    configure=_configure,
    run=_run,
)
