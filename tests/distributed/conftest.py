"""A real Dask cluster on 127.0.0.1: one ``dask scheduler`` and two ``dask worker`` processes.

Each worker advertises one fake GPU (``--resources "GPU=1"``) and sees it through its own
``CUDA_VISIBLE_DEVICES`` (``"0"`` and ``"1"``), as one worker per GPU would on a real machine.
The workers run under Dask's nanny (the default): a task runs in the worker process, a child of
the ``dask worker`` (nanny) process, which restarts it when it dies.

The PostgreSQL fixtures come from ``tests/conftest_postgres.py``; test modules register it with
``pytest_plugins`` (a non-root conftest may not).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("distributed", reason="the Dask tests need pip install 'hpo_plugins[dask]'")

#: GPU ids the fake-GPU workers see, one worker each.
GPU_IDS = ("0", "1")
_START_TIMEOUT = 120.0


@dataclass
class DaskCluster:
    """The processes of a running cluster and how to reach it."""

    address: str
    scheduler: subprocess.Popen[bytes]
    nannies: dict[str, subprocess.Popen[bytes]]  # GPU id -> its `dask worker` process
    log_dir: Path

    def logs(self) -> str:
        """Everything the scheduler and workers logged so far."""
        return "\n".join(f"== {p.name}\n{p.read_text(errors='replace')}"
                         for p in sorted(self.log_dir.glob("*.log")))


def dask_command(*args: str) -> list[str]:
    """The ``dask`` command line tool of this environment (``dask scheduler``, ...)."""
    tool = Path(sys.executable).parent / "dask"
    if tool.exists():
        return [str(tool), *args]
    found = shutil.which("dask")
    if found is None:
        pytest.skip("the `dask` command is not installed (pip install 'hpo_plugins[dask]')")
    return [found, *args]


def _start(argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)


def _scheduler_address(scheduler_file: Path, process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + _START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dask scheduler exited with {process.returncode}")
        if scheduler_file.exists():
            try:
                return str(json.loads(scheduler_file.read_text())["address"])
            except (ValueError, KeyError):
                pass  # being written
        time.sleep(0.1)
    raise RuntimeError("dask scheduler did not start in time")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop a process and its children (it leads its own session)."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(15)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(15)


@contextlib.contextmanager
def _cluster(root: Path, gpus: tuple[str, ...]) -> Iterator[DaskCluster]:
    """A scheduler and one nanny-managed worker per fake GPU id, stopped at the end."""
    env = dict(os.environ)
    scheduler_file = root / "scheduler.json"
    scheduler = _start(dask_command("scheduler", "--host", "127.0.0.1", "--port", "0",
                                    "--no-dashboard", "--scheduler-file", str(scheduler_file)),
                       root / "scheduler.log", env)
    nannies: dict[str, subprocess.Popen[bytes]] = {}
    try:
        address = _scheduler_address(scheduler_file, scheduler)
        for gpu in gpus:
            nannies[gpu] = _start(dask_command(
                "worker", address, "--name", f"gpu{gpu}", "--nthreads", "2",
                "--resources", "GPU=1", "--host", "127.0.0.1", "--no-dashboard",
                "--local-directory", str(root / f"worker{gpu}"), "--death-timeout", "60"),
                root / f"worker{gpu}.log", {**env, "CUDA_VISIBLE_DEVICES": gpu})
        yield DaskCluster(address, scheduler, nannies, root)
    finally:
        for process in [*nannies.values(), scheduler]:
            _stop(process)


@pytest.fixture(scope="session")
def dask_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    """``dask scheduler`` plus two nanny-managed ``dask worker`` processes with a fake GPU each."""
    with _cluster(tmp_path_factory.mktemp("dask"), GPU_IDS) as cluster:
        yield cluster


@pytest.fixture
def own_dask_cluster(tmp_path: Path) -> Iterator[DaskCluster]:
    """A cluster of one test's own (a scheduler, one worker with two threads), which the test
    may break: kill its scheduler, say."""
    root = tmp_path / "dask"
    root.mkdir()
    with _cluster(root, GPU_IDS[:1]) as cluster:
        yield cluster


@pytest.fixture
def dask_client(dask_cluster: DaskCluster) -> Iterator[Any]:
    """A client of the cluster, once both workers are up (a killed one is restarted first)."""
    from dask.distributed import Client

    with Client(dask_cluster.address, timeout=_START_TIMEOUT) as client:
        try:
            client.wait_for_workers(len(GPU_IDS), timeout=_START_TIMEOUT)
        except TimeoutError:
            pytest.fail(f"the Dask workers did not start:\n{dask_cluster.logs()}")
        yield client
