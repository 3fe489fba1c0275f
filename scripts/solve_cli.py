"""Time to solve CartPole with the README's train command, next to Stable-Baselines3.

For each seed, alternating: ``python -m rl8.train seed=N`` (the defaults: CartPole,
the library's hyperparameters, MLflow on, stopped by CartPole's solved rule) in a
fresh temporary directory, then, when ``--sb3-python`` is given, the anchor's
``bench_sb3.py --mode solve --env gym --seed N`` (SB3's RL-zoo PPO on gymnasium
CartPole-v1, solved when the last 100 episodes average >= 475 steps).

rl8's time is the one the app prints when it stops: wall seconds from the first
collect to the step that met the stop rule (``... | <seconds> s`` at the end of the
``stop.metric ... >=`` line). SB3's is ``time_to_solve_s`` (from the start of
``learn()``). Prints each run and the medians.

Usage::

    python scripts/solve_cli.py --seeds 0 1 2 \\
        --sb3-python ~/venvs/sb3/bin/python --anchors ../shared/anchors
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

#: The app's last status line: "stop.metric rewards/mean=0.9981 >= 0.998: step 23 | env steps
#: 376,832/... | ... | 5.1 s".
STOP_LINE = re.compile(r"stop\.metric .*: step (\d+) \| env steps ([\d,]+).* \| ([\d.]+) s$")


def run_rl8(seed: int, extra: list[str]) -> tuple[float | None, int | None]:
    with tempfile.TemporaryDirectory() as cwd:
        proc = subprocess.run(
            [sys.executable, "-m", "rl8.train", f"seed={seed}", "progress.bar=false", *extra],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
        )
    for line in (proc.stdout + proc.stderr).splitlines():
        m = STOP_LINE.search(line.strip())
        if m:
            return float(m.group(3)), int(m.group(2).replace(",", ""))
    tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
    print(f"  rl8 seed {seed}: not solved (rc={proc.returncode}): {tail}", flush=True)
    return None, None


def run_sb3(python: str, anchors: Path, seed: int) -> tuple[float | None, int | None]:
    solve = ["--mode", "solve", "--env", "gym", "--repeats", "1", "--seed", str(seed)]
    proc = subprocess.run(
        [python, "bench_sb3.py", *solve],
        cwd=anchors,
        capture_output=True,
        text=True,
        check=False,
    )
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    [rep] = out["results"][0]["runs"]
    return rep["time_to_solve_s"], rep["steps_to_solve"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--sb3-python", default=None, help="python of a venv with SB3 + gymnasium")
    p.add_argument("--anchors", type=Path, default=Path(__file__).parents[2] / "shared" / "anchors")
    p.add_argument("overrides", nargs="*", help="extra Hydra overrides for rl8")
    args = p.parse_args()
    times: dict[str, list[float]] = {"rl8": [], "sb3": []}
    for seed in args.seeds:
        secs, steps = run_rl8(seed, args.overrides)
        if secs is not None:
            times["rl8"].append(secs)
            print(f"rl8 seed {seed}: {secs:6.2f} s  {steps:>10,} env steps", flush=True)
        if args.sb3_python:
            secs, steps = run_sb3(args.sb3_python, args.anchors, seed)
            if secs is not None:
                times["sb3"].append(secs)
                print(f"sb3 seed {seed}: {secs:6.2f} s  {steps:>10,} env steps", flush=True)
    for name, values in times.items():
        if values:
            print(f"{name}: median {statistics.median(values):.2f} s over {len(values)} solved")
    if times["rl8"] and times["sb3"]:
        ratio = statistics.median(times["sb3"]) / statistics.median(times["rl8"])
        print(f"SB3 / rl8 (medians): {ratio:.1f}x")


if __name__ == "__main__":
    main()
