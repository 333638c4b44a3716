"""The helpers every framework's resume of a lost trial shares (hpo_plugins._resume)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import hpo_plugins as hpo
from hpo_plugins import TrialState
from hpo_plugins._resume import folders_to_clean, lost_chain, numbered


def _study(tmp_path: Path, max_retries: int) -> hpo.Study:
    return hpo.create_study({"x": hpo.hp.uniform("x", 0, 1)}, storage=":memory:",
                            logdir=str(tmp_path / "runs"), max_retries=max_retries)


def test_a_judged_dead_worker_keeps_its_folder_while_it_is_or_will_be_retried(
        tmp_path: Path) -> None:
    study = _study(tmp_path, max_retries=1)
    zombie = study.ask()
    # the heartbeat check fails it, and re-queues it a moment later: the worker that comes back
    # in between must not take the files from the retry about to start
    dead = study.storage.finish_trial(zombie.trial_id, TrialState.FAIL, None,
                                      {"fail_reason": "no heartbeat"})
    assert folders_to_clean(zombie) == []
    study.requeue_lost(dead)
    assert folders_to_clean(zombie) == []  # its retry waits
    retry = study.ask()
    assert retry.system_attrs["retry_of"] == zombie.number and lost_chain(retry) == [dead]
    assert folders_to_clean(retry) == [retry.log_dir, zombie.log_dir]  # ended here: its chain
    study.tell(retry, 0.5)
    assert folders_to_clean(zombie) == [zombie.log_dir]  # its retry is over: nobody needs them


def test_a_judged_dead_worker_that_will_not_be_retried_cleans_its_own_folder(
        tmp_path: Path) -> None:
    study = _study(tmp_path, max_retries=0)
    zombie = study.ask()
    study.storage.finish_trial(zombie.trial_id, TrialState.FAIL, None, {"fail_reason": "x"})
    assert folders_to_clean(zombie) == [zombie.log_dir]


def test_numbered_matches_names_as_they_are(tmp_path: Path) -> None:
    folder = tmp_path / "runs[1]*"  # glob characters: no pattern here
    folder.mkdir()
    for name in ("epoch=10", "epoch=2", "epoch=x", "tmp-1", "epoch=3.tmp"):
        (folder / name).mkdir()
    pattern = re.compile(r"^epoch=(\d+)$")
    assert numbered(str(folder), pattern) == [(2, os.path.join(folder, "epoch=2")),
                                              (10, os.path.join(folder, "epoch=10"))]
    assert numbered(str(tmp_path / "missing"), pattern) == []
