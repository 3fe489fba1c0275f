"""Start-up time of ``python -m rl8.train`` against ``python -c "import torch"``.

Runs, ``--rounds`` times (default 5) and alternating, so that both see the
same machine load:

* ``import torch``: ``python -c "import torch"``, launch to exit;
* ``import torch + an optimizer``: the same, then ``torch.optim.Adam(...)`` on
  one tensor: every torch optimizer imports ``torch._dynamo`` when built
  (~0.9 s here), so no training program can start faster than this;
* ``train (new store)``: ``python -m rl8.train stop.max_steps=1`` (the default
  CartPole run, MLflow on, its default store ``mlflow.db`` in the cwd) in a
  fresh temporary directory, so every run creates a new ``mlflow.db``, as a
  new user's first run does;
* ``train (existing store)``: the same in one directory whose ``mlflow.db``
  a warm-up run (not counted) created.

How the first step is timed: the app runs with ``progress.log_every_s=0.000001``,
so it logs a progress line (``... - step 1 | env steps ...``) right after
the first training step, once that step's metrics were handed to MLflow
(the run exists by then, except in a new local store, whose run is created
while training starts). The line's timestamp (Hydra's log format,
millisecond resolution, this machine's clock) minus the wall-clock time just
before the process was launched is the time to the first completed step.
The time to the process' exit is shown too (it includes the final
evaluation, checkpoint and closing the run).

Prints min/median/max per row and the ratio of the medians to ``import
torch``. Figures only: nothing is asserted. Usage::

    python scripts/startup.py                     # 5 rounds
    python scripts/startup.py --rounds 9 -- env=pendulum
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEP_LINE = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\]\[rl8\.train\]\[INFO\] - step 1 \|"
)


def _torch(python: str, code: str = "import torch") -> float:
    t0 = time.time()
    subprocess.run([python, "-c", code], check=True)
    return time.time() - t0


#: ``import torch`` and build one optimizer: the floor of any torch training program.
OPTIMIZER = "import torch; torch.optim.Adam([torch.zeros(1, requires_grad=True)])"


def _train(python: str, cwd: Path, overrides: list[str]) -> tuple[float, float]:
    """(seconds to the first completed step, seconds to exit) of one run in ``cwd``."""
    args = [
        python,
        "-m",
        "rl8.train",
        "stop.max_steps=1",
        "progress.log_every_s=0.000001",
        *overrides,
    ]
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    t0 = time.time()
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    t_exit = time.time() - t0
    if proc.returncode != 0:
        sys.exit(f"rl8.train failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    for line in (proc.stdout + proc.stderr).splitlines():
        m = STEP_LINE.match(line)
        if m:
            stamp = dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            return stamp - t0, t_exit
    sys.exit(f"no 'step 1 |' progress line in the output:\n{proc.stdout[-3000:]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", "-n", type=int, default=5)
    parser.add_argument("--python", default=sys.executable, help="interpreter to time")
    parser.add_argument("overrides", nargs="*", help="extra rl8.train overrides (after --)")
    a = parser.parse_args()

    rows: dict[str, list[float]] = {
        "import torch": [],
        "import torch + an optimizer": [],
        "train (new store): first step": [],
        "train (new store): exit": [],
        "train (existing store): first step": [],
        "train (existing store): exit": [],
    }
    with tempfile.TemporaryDirectory(prefix="rl8-startup-") as root:
        shared = Path(root) / "shared"
        shared.mkdir()
        _train(a.python, shared, a.overrides)  # warm-up: creates the shared store, warms caches
        for i in range(a.rounds):
            rows["import torch"].append(_torch(a.python))
            rows["import torch + an optimizer"].append(_torch(a.python, OPTIMIZER))
            fresh = Path(root) / f"fresh{i}"
            fresh.mkdir()
            first, end = _train(a.python, fresh, a.overrides)
            rows["train (new store): first step"].append(first)
            rows["train (new store): exit"].append(end)
            first, end = _train(a.python, shared, a.overrides)
            rows["train (existing store): first step"].append(first)
            rows["train (existing store): exit"].append(end)
            print(f"round {i + 1}/{a.rounds} done", file=sys.stderr)

    base = statistics.median(rows["import torch"])
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{a.rounds} rounds, {os.cpu_count()} CPUs (load average {load}), {a.python}")
    print(f"{'seconds':36} {'min':>6} {'median':>7} {'max':>6} {'/torch':>7}")
    for name, xs in rows.items():
        med = statistics.median(xs)
        print(f"{name:36} {min(xs):6.2f} {med:7.2f} {max(xs):6.2f} {med / base:6.2f}x")


if __name__ == "__main__":
    main()
