"""Time to solve the built-in tasks with default hyperparameters (CPU).

For each task and seed: env steps and wall seconds until the criterion holds,
measured from the first collect.

* cartpole: ``episodes/return_mean`` (the last 100 episodes) >= 475, SB3 / rl-zoo's rule
* pendulum: ``episodes/return_mean`` >= -200 (gymnasium's "solved", 200-step episodes)
* gym-cartpole, gym-pendulum: the same rules on gymnasium's ``CartPole-v1`` and
  ``Pendulum-v1`` through ``rl8.envs.Gymnasium`` (needs ``rl8[gymnasium]``)
* memory: LSTM ``rewards/mean`` >= 0.95 of the maximum (no episode ends); the MLP's best
  over the same number of steps is printed next to it

Usage: ``python scripts/solve.py [--tasks cartpole pendulum memory gym-cartpole] [--seeds 0 1 2]
[--set horizon=16 ...]`` (``--set``: hyperparameters instead of the defaults)
"""

from __future__ import annotations

import argparse
import ast
import functools
import time

import torch

from rl8 import RecurrentTrainer, Trainer
from rl8.envs import CartPole, Memory, Pendulum

EPISODES = "episodes/return_mean"
#: gymnasium tasks: env id and solved threshold of the mean return of the last 100 episodes.
GYM = {"gym-cartpole": ("CartPole-v1", 475.0), "gym-pendulum": ("Pendulum-v1", -200.0)}


def _value(text: str) -> object:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def solve(trainer, metric: str, target: float, budget: int, cap_s: float) -> tuple:
    t0 = time.perf_counter()
    while trainer.state["env/steps"] < budget and time.perf_counter() - t0 < cap_s:
        if trainer.step()[metric] >= target:
            return trainer.state["env/steps"], time.perf_counter() - t0
    return None, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tasks", nargs="+", default=["cartpole", "pendulum", "memory"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--cap", type=float, default=150.0, help="wall-second cap per run")
    p.add_argument("--set", nargs="*", default=[], help="hyperparameters, e.g. num_envs=64")
    args = p.parse_args()
    hp = {k: _value(v) for k, v in (a.split("=", 1) for a in args.set)}
    for task in args.tasks:
        for seed in args.seeds:
            torch.manual_seed(seed)
            if task == "cartpole":
                trainer = Trainer(CartPole, tracker=None, **hp)
                steps, secs = solve(trainer, EPISODES, 475.0, 20_000_000, args.cap)
                extra = ""
            elif task == "pendulum":
                trainer = Trainer(Pendulum, tracker=None, **hp)
                steps, secs = solve(trainer, EPISODES, -200.0, 20_000_000, args.cap)
                extra = ""
            elif task.startswith("gym-"):
                from rl8.envs import Gymnasium

                env_id, target = GYM[task]
                trainer = Trainer(functools.partial(Gymnasium, id=env_id), tracker=None, **hp)
                steps, secs = solve(trainer, EPISODES, target, 20_000_000, args.cap)
                trainer.algorithm.env.close()
                extra = ""
            else:
                target = 0.95 * Memory(1).max_mean_reward
                lstm = RecurrentTrainer(Memory, tracker=None)
                steps, secs = solve(lstm, "rewards/mean", target, 20_000_000, args.cap)
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
