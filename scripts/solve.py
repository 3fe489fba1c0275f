"""Time to solve the built-in tasks with default hyperparameters (CPU).

For each task and seed: env steps and wall seconds until the criterion holds,
measured from the first collect.

* cartpole: mean ``rewards/mean`` over the last 16 collects (512 steps per sub-env) >= 0.998
  (mean episode >= 500 steps; one collect is not enough: sub-envs fail in waves)
* pendulum: mean ``rewards/mean`` over the last 7 collects (224 steps, more than
  one 200-step episode) >= -1.0
* memory: LSTM ``rewards/mean`` >= 0.95 of the maximum; the MLP's best over the
  same number of steps is printed next to it

Usage: ``python scripts/solve.py [--tasks cartpole pendulum memory] [--seeds 0 1 2]``
"""

from __future__ import annotations

import argparse
import time

import torch

from rl8 import RecurrentTrainer, Trainer
from rl8.envs import CartPole, Memory, Pendulum


def solve(trainer, target: float, window: int, budget: int, cap_s: float) -> tuple:
    history: list[float] = []
    t0 = time.perf_counter()
    while trainer.state["env/steps"] < budget and time.perf_counter() - t0 < cap_s:
        history.append(trainer.step()["rewards/mean"])
        recent = history[-window:]
        if len(recent) == window and sum(recent) / window >= target:
            return trainer.state["env/steps"], time.perf_counter() - t0
    return None, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tasks", nargs="+", default=["cartpole", "pendulum", "memory"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--cap", type=float, default=150.0, help="wall-second cap per run")
    args = p.parse_args()
    for task in args.tasks:
        for seed in args.seeds:
            torch.manual_seed(seed)
            if task == "cartpole":
                steps, secs = solve(
                    Trainer(CartPole, tracker=None), 0.998, 16, 20_000_000, args.cap
                )
                extra = ""
            elif task == "pendulum":
                steps, secs = solve(Trainer(Pendulum, tracker=None), -1.0, 7, 20_000_000, args.cap)
                extra = ""
            else:
                target = 0.95 * Memory(1).max_mean_reward
                lstm = RecurrentTrainer(Memory, tracker=None)
                steps, secs = solve(lstm, target, 1, 20_000_000, args.cap)
                torch.manual_seed(seed)
                mlp = Trainer(Memory, tracker=None)
                best = max(mlp.step()["rewards/mean"] for _ in range(lstm.state["algorithm/steps"]))
                extra = f"  (MLP best {best / Memory(1).max_mean_reward:.2f} of max, same steps)"
            got = (
                f"{steps:>10,} env steps {secs:6.1f} s" if steps else f"not solved in {secs:.0f} s"
            )
            print(f"{task:<9} seed {seed}: {got}{extra}", flush=True)


if __name__ == "__main__":
    main()
