"""Check the launcher's GPU pool on a machine with real NVIDIA GPUs (issue 5, item 7).

CI has no GPU, so the test suite checks the pool with fake GPU ids; this script checks what only
real hardware can show. It runs four short studies on a SQLite file and prints one line per check
(PASS or FAIL) and a JSON summary; the exit status is 0 when every check passes.

1. ``pool``: ``JoblibLauncher(gpus="all", trials_per_gpu=2)`` (fresh processes, the default with
   GPUs). Each trial allocates ``--gib`` GiB on its GPU, *leaks it on purpose* (keeps a reference
   for the rest of its process), works a little and holds the memory ``--hold`` seconds. Checks:
   the launcher never imports torch; each trial sees exactly one GPU, the one it was pinned to
   (the CUDA device's UUID matches ``nvidia-smi``'s for that id); no GPU ever runs more than
   ``trials_per_gpu`` trials and each reaches that many; with several GPUs, trials run on
   different GPUs at once; the GPU memory in use (sampled with ``nvidia-smi`` every 0.2 s) never
   grows past what one round of trials holds, and is back to the baseline after the run.
2. ``reuse``: the same with ``fresh_process=False``, as a contrast: the leak piles up in the
   reused workers, which shows that the first run's flat memory is the fresh processes' doing.
3. ``pin``: ``gpus=[<first GPU>, <an id this machine lacks>]``: the second slot's trial sees no
   device at all, so CUDA really takes the pin from ``CUDA_VISIBLE_DEVICES``.
4. ``script``: ``hpo-plugins run --gpus all --trials-per-gpu 2`` around
   ``examples/train_digits.py --accelerator gpu`` (Lightning with ``HPOCallback`` in each child).

    python scripts/gpu_check.py                   # about two minutes on one H100
    python scripts/gpu_check.py --gib 4 --trials 12 --out results/
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hpo_plugins as hpo
from hpo_plugins import hp
from hpo_plugins.launchers import JoblibLauncher, detect_gpus
from hpo_plugins.samplers import RandomSampler

ROOT = Path(__file__).resolve().parent.parent
SPACE = {"x": hp.uniform("x", -1.0, 1.0)}
MIB = 2**20


def main() -> int:
    """Run the four checks; 0 when all pass."""
    args = _parse()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    ids = detect_gpus()
    if not ids:
        print("No GPU found (nvidia-smi lists none): nothing to check.")
        return 2
    workdir = Path(args.out or tempfile.mkdtemp(prefix="gpu_check_"))
    workdir.mkdir(parents=True, exist_ok=True)
    uuids = _smi_uuids()
    checks: list[dict[str, Any]] = []
    summary: dict[str, Any] = {"gpus": ids, "nvidia_smi_uuids": uuids, "runs": {}}

    def check(name: str, ok: bool, detail: str) -> None:
        checks.append({"check": name, "ok": bool(ok), "detail": detail})
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}", flush=True)

    per_round_mib = args.gib * 1024
    for mode, fresh in (("pool", True), ("reuse", False)):
        launcher = JoblibLauncher(gpus="all", trials_per_gpu=2, fresh_process=fresh)
        run = _run_study(workdir, mode, _make_objective(args.gib, args.hold), launcher,
                         args.trials)
        summary["runs"][mode] = run
        trials = run["trials"]
        check(f"{mode}: trials complete", all(t["state"] == "COMPLETE" for t in trials),
              f"{sum(t['state'] == 'COMPLETE' for t in trials)}/{len(trials)} COMPLETE")
        if mode == "pool":
            _pool_checks(check, trials, ids, uuids, run, per_round_mib)
        else:
            grew = run["peak_mib"] - run["baseline_mib"]
            fresh_grew = summary["runs"]["pool"]["peak_mib"] - summary["runs"]["pool"][
                "baseline_mib"]
            check("reuse: the leak piles up in reused workers (the contrast)",
                  grew > fresh_grew + per_round_mib,
                  f"peak +{grew:.0f} MiB with reused workers against +{fresh_grew:.0f} MiB "
                  f"with fresh processes")
        check(f"{mode}: memory back to baseline after the run",
              run["after_mib"] - run["baseline_mib"] < 256,
              f"baseline {run['baseline_mib']:.0f} MiB, after {run['after_mib']:.0f} MiB")

    absent = next(str(i) for i in range(64, 1000) if str(i) not in ids)
    pin = _run_study(workdir, "pin", _make_objective(0.25, 1.0),
                     JoblibLauncher(gpus=[ids[0], absent]), 2)
    summary["runs"]["pin"] = pin
    seen = {t["gpu"]: t["attrs"].get("device_count") for t in pin["trials"]}
    check("pin: CUDA honours CUDA_VISIBLE_DEVICES",
          seen.get(ids[0]) == 1 and seen.get(absent) == 0,
          f"devices seen: {seen} (GPU {ids[0]} exists, id {absent} does not)")

    summary["runs"]["script"] = script = _script_mode(workdir)
    states = [t["state"] for t in script["trials"]]
    check("script: Lightning trials on the GPU in child processes",
          script["returncode"] == 0 and len(states) == 4
          and all(s in ("COMPLETE", "PRUNED") for s in states)
          and all(t["gpu"] in ids for t in script["trials"]),
          f"exit {script['returncode']}, states {states}, "
          f"gpus {[t['gpu'] for t in script['trials']]}")

    check("the launcher process never imported torch", "torch" not in sys.modules,
          "torch not in sys.modules" if "torch" not in sys.modules else "torch was imported")
    summary["checks"] = checks
    (workdir / "gpu_check.json").write_text(json.dumps(summary, indent=1, default=str))
    failed = [c["check"] for c in checks if not c["ok"]]
    print(f"{len(checks) - len(failed)}/{len(checks)} checks passed; details in "
          f"{workdir / 'gpu_check.json'}")
    return 1 if failed else 0


def _pool_checks(check: Callable[[str, bool, str], None], trials: list[dict[str, Any]],
                 ids: list[str], uuids: dict[str, str], run: dict[str, Any],
                 per_round_mib: float) -> None:
    attrs = [t["attrs"] for t in trials]
    seen = sorted({(a.get("visible"), t["gpu"], a.get("device_count"))
                   for a, t in zip(attrs, trials)})
    check("pool: each trial sees exactly one GPU, the one it records",
          all(a.get("device_count") == 1 and a.get("visible") == t["gpu"]
              for a, t in zip(attrs, trials)),
          f"(CUDA_VISIBLE_DEVICES, system_attrs['gpu'], devices seen): {seen}")
    check("pool: the CUDA device is the nvidia-smi GPU of that id",
          all(_same_uuid(a.get("uuid"), uuids.get(t["gpu"])) for a, t in zip(attrs, trials)),
          f"{len({a.get('uuid') for a in attrs})} distinct device UUID(s) for "
          f"{len({t['gpu'] for t in trials})} GPU id(s)")
    spans: dict[str, list[tuple[float, float]]] = {}
    for a, t in zip(attrs, trials):
        spans.setdefault(t["gpu"], []).append((a["start"], a["end"]))
    peaks = {gpu: _max_overlap(s) for gpu, s in spans.items()}
    check("pool: trials_per_gpu=2 is reached and never exceeded, every GPU used",
          set(peaks) == set(ids) and all(p == 2 for p in peaks.values()),
          f"most trials at once per GPU: {peaks}")
    all_spans = [(a["start"], a["end"], t["gpu"]) for a, t in zip(attrs, trials)]
    across = _gpus_at_once(all_spans)
    if len(ids) > 1:
        check("pool: trials on different GPUs at once", across == len(ids),
              f"most GPUs busy at once: {across} of {len(ids)}")
    else:
        print("SKIP  pool: trials on different GPUs at once: this machine has one GPU",
              flush=True)
    grew = run["peak_mib"] - run["baseline_mib"]
    bound = len(ids) * 2 * (per_round_mib + 1024)  # one round: 2 trials per GPU, 1 GiB context
    check("pool: leaked memory goes back with each fresh process", grew < bound,
          f"peak +{grew:.0f} MiB over {len(trials)} leaky trials of {per_round_mib:.0f} MiB "
          f"(one round holds at most {bound:.0f} MiB)")


def _make_objective(gib: float, hold: float) -> Callable[[dict[str, Any]], float]:
    """A closure (it travels to the workers with cloudpickle) that leaks ``gib`` GiB per trial."""
    leaked: list[Any] = []

    def objective(params: dict[str, Any]) -> float:
        start = time.time()
        import torch

        info: dict[str, Any] = {"visible": os.environ.get("CUDA_VISIBLE_DEVICES"),
                                "device_count": torch.cuda.device_count(), "pid": os.getpid()}
        if info["device_count"]:
            props = torch.cuda.get_device_properties(0)
            info["uuid"], info["name"] = str(getattr(props, "uuid", "")), props.name
            block = torch.ones(int(gib * 2**30) // 4, dtype=torch.float32, device="cuda")
            leaked.append(block)  # a leaky objective: the block lives as long as the process
            a = torch.randn(2048, 2048, device="cuda")
            for _ in range(50):
                a = torch.tanh(a @ a / 64.0)
            torch.cuda.synchronize()
            info["allocated_mib"] = torch.cuda.memory_allocated() / MIB
        time.sleep(hold)
        info["start"], info["end"] = start, time.time()
        hpo.current_trial().set_user_attr("gpu_check", info)
        return float(params["x"]) ** 2

    return objective


def _run_study(workdir: Path, name: str, objective: Callable[[dict[str, Any]], float],
               launcher: JoblibLauncher, n_trials: int) -> dict[str, Any]:
    url = f"sqlite:///{workdir / 'gpu_check.db'}"
    with _memory_sampler() as memory:
        baseline = memory.now()
        began = time.time()
        study = hpo.create_study(space=SPACE, study_name=name, storage=url,
                                 sampler=RandomSampler(), seed=0)
        study.optimize(objective, n_trials=n_trials, launcher=launcher)
        seconds = time.time() - began
        time.sleep(1.0)  # let the driver take back the memory of exited processes
        after = memory.now()
        peak = memory.peak()
    return {"seconds": round(seconds, 1), "baseline_mib": baseline, "peak_mib": peak,
            "after_mib": after, "trials": _trials(study)}


def _trials(study: hpo.Study) -> list[dict[str, Any]]:
    return [{"number": t.number, "state": t.state.name, "gpu": t.system_attrs.get("gpu"),
             "pid": t.system_attrs.get("worker", {}).get("pid"),
             "attrs": t.user_attrs.get("gpu_check", {}), "value": t.value}
            for t in study.trials]


def _script_mode(workdir: Path) -> dict[str, Any]:
    url = f"sqlite:///{workdir / 'gpu_check.db'}"
    command = [sys.executable, "-m", "hpo_plugins.cli", "run",
               "--space", "examples/space.py:SPACE", "--n-trials", "4", "--gpus", "all",
               "--trials-per-gpu", "2", "--study", "script", "--storage", url, "--seed", "0",
               "--", sys.executable, "examples/train_digits.py", "--epochs", "3",
               "--accelerator", "gpu"]
    began = time.time()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode:
        print(done.stdout[-2000:], done.stderr[-4000:], sep="\n", flush=True)
    study = hpo.load_study("script", storage=url)
    return {"seconds": round(time.time() - began, 1), "returncode": done.returncode,
            "trials": _trials(study)}


class _Memory:
    """GPU memory in use on all GPUs together (MiB), sampled by ``nvidia-smi`` in a thread."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.stop = threading.Event()

    def now(self) -> float:
        return _smi_used()

    def peak(self) -> float:
        return max(self.samples, default=self.now())

    def loop(self) -> None:
        while not self.stop.is_set():
            self.samples.append(_smi_used())
            self.stop.wait(0.2)


@contextmanager
def _memory_sampler() -> Iterator[_Memory]:
    memory = _Memory()
    thread = threading.Thread(target=memory.loop, daemon=True)
    thread.start()
    try:
        yield memory
    finally:
        memory.stop.set()
        thread.join()


def _smi(query: str) -> list[list[str]]:
    smi = shutil.which("nvidia-smi") or "nvidia-smi"
    out = subprocess.run([smi, f"--query-gpu={query}", "--format=csv,noheader,nounits"],
                         capture_output=True, text=True, check=True, timeout=30).stdout
    return [[cell.strip() for cell in line.split(",")] for line in out.splitlines() if line]


def _smi_used() -> float:
    return sum(float(row[0]) for row in _smi("memory.used"))


def _smi_uuids() -> dict[str, str]:
    return {row[0]: row[1] for row in _smi("index,uuid")}


def _same_uuid(torch_uuid: str | None, smi_uuid: str | None) -> bool:
    """torch prints the bare UUID; nvidia-smi prefixes it with ``GPU-``."""
    if not torch_uuid or not smi_uuid:
        return False
    return smi_uuid.removeprefix("GPU-").lower() == torch_uuid.removeprefix("GPU-").lower()


def _max_overlap(spans: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


def _gpus_at_once(spans: list[tuple[float, float, str]]) -> int:
    """The most distinct GPUs busy at one instant (checked at every trial start)."""
    return max((len({g for s, e, g in spans if s <= t < e}) for t, _, _ in spans), default=0)


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=2.0, help="GiB each trial leaks (2)")
    parser.add_argument("--hold", type=float, default=3.0,
                        help="seconds each trial holds its GPU (3)")
    parser.add_argument("--trials", type=int, default=8, help="trials per run (8)")
    parser.add_argument("--out", help="folder for the SQLite file and gpu_check.json")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(main())
