"""PPO throughput on CartPole: environment transitions per second over whole
collect + update iterations (warm-up excluded), printed as a table.

Two settings per ``num_envs``:

* ``equal-work``: the original rl8 1.0.0's default work — separate policy and
  value MLPs 4->256->256 (ReLU), 4 SGD iterations over the whole buffer as one
  minibatch, Adam lr 1e-3, fp32. Any speed-up here comes from how the work is
  done, not from doing less of it.
* ``defaults``: the library's defaults, what ``Trainer(env_cls)`` does out of
  the box for an env without tuned hyperparameters (64 envs, minibatches of
  512, 10 passes; CartPole's own are lighter), scaled to ``num_envs``:
  minibatches of ``512 * num_envs / 64`` transitions, so an update takes as
  many optimizer steps (40) at every size.

With ``--anchor-python`` the original rl8 1.0.0 harness
(``../shared/anchors/bench_rl8.py``, run in its own venv) is measured in the
same sitting, alternating with rl8, and the ratio of medians is printed.
A roofline line gives the equal-work matmul FLOP rate against a plain
``torch.mm`` of similar shape.

Usage::

    python scripts/bench.py                              # rl8 only
    python scripts/bench.py --anchor-python ~/venvs/rl8-1.0.0/bin/python --rounds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from rl8 import AlgorithmConfig, Trainer
from rl8.envs import CartPole

EQUAL_WORK = {
    "model_config": {"hiddens": (256, 256), "activation": "relu"},
    "num_sgd_iters": 4,
    "sgd_minibatch_size": 1 << 30,  # capped at the buffer: one full-batch minibatch, as 1.0.0
    "optimizer_config": {"lr": 1e-3},
}
DEFAULTS = AlgorithmConfig()
ANCHORS = Path(__file__).resolve().parents[1].parent / "shared" / "anchors"


def measure(num_envs: int, horizon: int, setting: str, warmup: int, iters: int) -> dict:
    """Transitions/s of one fresh trainer: median over ``iters`` timed iterations."""
    kwargs = (
        dict(EQUAL_WORK)
        if setting == "equal-work"
        else {
            "sgd_minibatch_size": DEFAULTS.sgd_minibatch_size * num_envs // DEFAULTS.num_envs,
            "num_sgd_iters": DEFAULTS.num_sgd_iters,
        }
    )
    trainer = Trainer(
        CartPole, num_envs=num_envs, horizon=horizon, device="cpu", **kwargs, tracker=None
    )
    for _ in range(warmup):
        trainer.step()
    times, collect, update = [], [], []
    for _ in range(iters):
        t0 = time.perf_counter()
        stats = trainer.step()
        times.append(time.perf_counter() - t0)
        collect.append(stats["profiling/collect_ms"] / 1e3)
        update.append(stats["profiling/step_ms"] / 1e3)
    it = statistics.median(times)
    return {
        "transitions_per_s": num_envs * horizon / it,
        "iter_s": it,
        "collect_s": statistics.median(collect),
        "update_s": statistics.median(update),
    }


def equal_work_flops(num_envs: int, horizon: int) -> float:
    """Matmul FLOPs of one equal-work iteration (2 FLOPs per multiply-add)."""
    policy = 4 * 256 + 256 * 256 + 256 * 2
    value = 4 * 256 + 256 * 256 + 256 * 1
    fwd = 2 * (policy + value)
    # Backward: grads w.r.t. weights for every layer and w.r.t. inputs except the first.
    bwd = 2 * fwd - 2 * 2 * (4 * 256)
    n = num_envs * horizon
    collect = n * 2 * policy + (n + num_envs) * 2 * value
    return collect + 4 * n * (fwd + bwd)


def mm_gflops() -> float:
    """GFLOP/s of a plain fp32 ``torch.mm`` of update-like shape (16384x256 @ 256x256)."""
    a, b = torch.randn(16384, 256), torch.randn(256, 256)
    for _ in range(3):
        a @ b
    n, t0 = 20, time.perf_counter()
    for _ in range(n):
        a @ b
    return n * 2 * 16384 * 256 * 256 / (time.perf_counter() - t0) / 1e9


def anchor(python: str, num_envs: int, warmup: int, iters: int) -> float:
    """Median transitions/s of rl8 1.0.0 from its harness (one process, one run)."""
    cmd = [
        python, str(ANCHORS / "bench_rl8.py"), "--mode", "throughput", "--num-envs", str(num_envs),
        "--repeats", "1", "--warmup", str(warmup), "--iters", str(iters), "--quiet-wait", "5",
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ANCHORS).stdout
    result = json.loads(out.strip().splitlines()[-1])["results"][0]
    return float(result["median"]["transitions_per_s"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--num-envs", type=int, nargs="+", default=[512, 4096])
    p.add_argument("--horizon", type=int, default=32)
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds (fresh trainers)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--anchor-python", default=None, help="python of a venv with rl8==1.0.0")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    peak = mm_gflops()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; torch.mm {peak:.0f} GFLOP/s"
    )
    rows = []
    for n in args.num_envs:
        warmup, iters = (2, 8) if n <= 1024 else (1, 3)
        res: dict[str, list[float]] = {"equal-work": [], "defaults": [], "rl8 1.0.0": []}
        details: dict[str, dict] = {}
        for _ in range(args.rounds):
            for setting in ("equal-work", "defaults"):
                m = measure(n, args.horizon, setting, warmup, iters)
                res[setting].append(m["transitions_per_s"])
                details[setting] = m
            if args.anchor_python:
                res["rl8 1.0.0"].append(anchor(args.anchor_python, n, warmup, iters))
        flops = equal_work_flops(n, args.horizon)
        for setting, values in res.items():
            if not values:
                continue
            med = statistics.median(values)
            d = details.get(setting, {})
            gflops = flops * med / (n * args.horizon) / 1e9 if setting != "defaults" else None
            rows.append((n, setting, med, min(values), max(values), d, gflops))
        if res["rl8 1.0.0"]:
            ratio = statistics.median(res["equal-work"]) / statistics.median(res["rl8 1.0.0"])
            print(f"num_envs={n}: equal-work rl8 / rl8 1.0.0 = {ratio:.2f}x")
    print(
        f"\n{'num_envs':>8} {'setting':<11} {'trans/s':>9} {'min-max':>17} {'collect s':>9} {'update s':>9} {'GFLOP/s (% mm)':>15}"
    )
    for n, setting, med, lo, hi, d, gflops in rows:
        g = f"{gflops:.0f} ({100 * gflops / peak:.0f}%)" if gflops else "-"
        c = f"{d['collect_s']:.3f}" if d else "-"
        u = f"{d['update_s']:.3f}" if d else "-"
        print(f"{n:>8} {setting:<11} {med:>9.0f} {lo:>8.0f}-{hi:<8.0f} {c:>9} {u:>9} {g:>15}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
