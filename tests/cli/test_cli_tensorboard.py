"""``hpo-plugins tensorboard``: clear errors.

The command serving a logdir (and stopping on SIGTERM) is tested end to end in
``tests/tensorboard/test_tb_dashboard.py``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hpo_plugins.cli import EXIT_FAILURE, EXIT_NOT_FOUND, EXIT_USAGE
from hpo_plugins.tensorboard import _server

Run = Callable[..., tuple[int, str, str]]


def test_a_study_without_logdir_is_a_clear_error(cli: Run, url: str) -> None:
    code, out, err = cli("tensorboard", "--study", "plain", "--storage", url)
    assert (code, out) == (EXIT_FAILURE, "")
    assert "study 'plain' has no logdir" in err and err.count("\n") == 1
    assert "or hpo-plugins run --logdir runs/plain" in err  # not only the Python way


def test_an_unknown_study_is_exit_3(cli: Run, url: str) -> None:
    assert cli("tensorboard", "--study", "nope", "--storage", url)[0] == EXIT_NOT_FOUND


def test_a_deleted_logdir_is_a_clear_error(cli: Run, url: str, tmp_path: Any) -> None:
    os.rename(tmp_path / "runs", tmp_path / "moved")
    code, _, err = cli("tensorboard", "--study", "demo", "--storage", url)
    assert code == EXIT_FAILURE and "does not exist" in err


def test_without_tensorboard_the_error_names_the_extra(
        cli: Run, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # find_spec() then finds nothing
    code, _, err = cli("tensorboard", "--study", "demo", "--storage", url)
    assert code == EXIT_FAILURE and "pip install 'hpo_plugins[tensorboard]'" in err


@pytest.mark.parametrize("port", ["0", "-5", "65536", "70000", "http"])
def test_a_port_outside_1_to_65535_is_a_usage_error(cli: Run, url: str, port: str) -> None:
    code, out, err = cli("tensorboard", "--study", "demo", "--storage", url, "--port", port)
    assert (code, out) == (EXIT_USAGE, "")
    assert f"expected a port number from 1 to 65535, got {port!r}" in err


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port that a socket listens on (on 127.0.0.1, the command's default host)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def test_a_port_in_use_is_one_line_and_exit_1_before_any_url(
        cli: Run, url: str, taken_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_server(*args: Any, **kwargs: Any) -> list[str]:
        raise AssertionError("the server must not be started on a port in use")

    monkeypatch.setattr(_server, "server_command", no_server)
    code, out, err = cli("tensorboard", "--study", "demo", "--storage", url,
                         "--port", str(taken_port))
    assert (code, out) == (EXIT_FAILURE, "")  # no URL printed
    assert f"port {taken_port} on 127.0.0.1 is already in use" in err and "--port" in err
    assert err.count("\n") == 1


def test_the_port_suggested_instead_of_one_in_use_was_free(
        cli: Run, url: str, taken_port: int) -> None:
    """It suggested the next port without looking: with two servers side by side, a port in
    use too."""
    with socket.socket() as neighbour:
        try:
            neighbour.bind(("127.0.0.1", taken_port + 1))
            neighbour.listen()
        except OSError:
            pass  # in use already: busy either way
        code, _, err = cli("tensorboard", "--study", "demo", "--storage", url,
                           "--port", str(taken_port))
        assert code == EXIT_FAILURE
        suggested = int(err.split("e.g. --port ")[1].rstrip(".\n"))
        assert suggested > taken_port + 1, err
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", suggested))  # free when it was said


def test_the_port_check_probes_the_family_tensorboard_binds(
        cli: Run, url: str, taken_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where ``localhost`` resolves to ::1 first, TensorBoard (werkzeug) still binds IPv4 for a
    host without ":"; the check must probe that address, not the first one resolved."""
    resolve = socket.getaddrinfo

    def ipv6_first(host: str, port: int, family: int = 0, *args: Any) -> list[Any]:
        if host == "localhost" and family == socket.AF_UNSPEC:
            return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0)),
                    *resolve("127.0.0.1", port, socket.AF_INET, *args)]
        return resolve("127.0.0.1" if host == "localhost" else host, port, family, *args)

    monkeypatch.setattr(socket, "getaddrinfo", ipv6_first)
    monkeypatch.setattr(_server, "server_command", lambda *a, **k: [sys.executable, "-c", ""])
    code, out, err = cli("tensorboard", "--study", "demo", "--storage", url, "--host",
                         "localhost", "--port", str(taken_port))
    assert (code, out) == (EXIT_FAILURE, "")
    assert f"port {taken_port} on localhost is already in use" in err


def test_a_host_that_is_no_name_is_one_clear_line(cli: Run, url: str) -> None:
    code, out, err = cli("tensorboard", "--study", "demo", "--storage", url, "--host", "a..b")
    assert (code, out) == (EXIT_FAILURE, "")
    assert "--host 'a..b' is not a host name or an address" in err and "UnicodeError" not in err


def test_a_server_that_exits_with_an_error_is_exit_1(
        cli: Run, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_server(logdir: str, **kwargs: Any) -> list[str]:
        return [sys.executable, "-c", "raise SystemExit(255)"]  # as TensorBoard's bind errors

    monkeypatch.setattr(_server, "server_command", failing_server)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])  # free once closed
    code, out, err = cli("tensorboard", "--study", "demo", "--storage", url, "--port", str(port))
    assert code == EXIT_FAILURE
    assert f"http://127.0.0.1:{port}/#hparams" in out
    assert err.strip().endswith("TensorBoard exited with code 255 (its own messages are above).")


def test_the_server_ignores_modules_in_the_working_directory(tmp_path: Any) -> None:
    """A user's ``http.py`` beside the study must not shadow the standard library in the
    server (``python -m`` would put the working directory first on ``sys.path``)."""
    (tmp_path / "http.py").write_text("raise SystemExit('the shadowing module was imported')\n")
    command = [*_server.server_command(str(tmp_path), port=1), "--help"]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert result.returncode == 0, result.stderr
    assert "--logdir" in result.stdout


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_closed_terminal_stops_the_server_too(url: str) -> None:
    """SIGHUP (a closed terminal, a dropped ssh session) ended the command at once and left
    the server, in a session of its own, running and holding the port; now it is stopped as
    on SIGTERM, and the command exits 129 (128 + SIGHUP)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])  # free once closed
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_ENABLE_ONEDNN_OPTS="0")
    process = subprocess.Popen(
        [sys.executable, "-m", "hpo_plugins.cli", "tensorboard", "--study", "demo",
         "--storage", url, "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while not _answers(port):
            assert process.poll() is None and time.monotonic() < deadline, "no server"
            time.sleep(0.3)
        process.send_signal(signal.SIGHUP)
        assert process.wait(timeout=30) == 129
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not _answers(port)  # the server is gone with the command


def _answers(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(2)
        return sock.connect_ex(("127.0.0.1", port)) == 0
