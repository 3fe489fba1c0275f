"""Every overlay of the repository's ``experiments/`` composes and trains.

The overlays are found with a glob, so a new one is covered without editing
this file. Each runs in-process for a tiny budget (2 evaluations) with the
overlay's own settings, except the sizes that make it slow.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from conftest import CONF_DIR, REPO_ROOT, TINY
from omegaconf import DictConfig, OmegaConf

from rl8 import checkpoint
from rl8.build import build
from rl8.train import run

EXPERIMENTS = sorted(p.stem for p in (REPO_ROOT / "experiments").glob("*.yaml"))
#: Groups an overlay may pick an option of (``override /env: cartpole``).
GROUPS = ("env", "model", "optimizer")


def test_the_glob_finds_the_overlays() -> None:
    # Guards against a moved directory turning the parametrized test into zero tests.
    assert {"cartpole", "cartpole_search", "memory", "pendulum"} <= set(EXPERIMENTS)


def _overlay(name: str) -> dict:
    return yaml.safe_load((REPO_ROOT / "experiments" / f"{name}.yaml").read_text())


def _leaves(node: object, prefix: str = "") -> dict[str, object]:
    """Dotted key -> value of every leaf of a nested dict."""
    if not isinstance(node, dict) or not node:
        return {prefix: node}
    out: dict[str, object] = {}
    for k, v in node.items():
        out.update(_leaves(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def _tiny_overrides(cfg: DictConfig, recurrent: bool) -> dict[str, str]:
    """Small sizes that still fit the overlay: evaluations on its env-reset
    interval, whole sequences for the recurrent trainer, and a stop after
    exactly two evaluations."""
    hper = int(cfg.trainer.horizons_per_env_reset)
    every = hper if hper > 0 else 1
    tiny = dict(o.split("=", 1) for o in TINY)
    tiny.update(
        {
            "mlflow.enabled": "false",
            "trainer.horizon": str(max(8, int(cfg.trainer.seq_len)) if recurrent else 8),
            "eval.every": str(every),
            "checkpoint.every": str(every),
            "stop.max_steps": str(2 * every),
        }
    )
    # Episodes short enough to end within the tiny runs (the objective may be
    # the mean episode return).
    limit = {"rl8.envs.CartPole": "max_episode_steps", "rl8.envs.Pendulum": "episode_steps"}
    if cfg.env._target_ in limit:
        tiny[f"env.config.{limit[cfg.env._target_]}"] = "4"
    if cfg.stop.metric is not None:
        # Keep the overlay's stop metric (its name is checked at the first step),
        # with a threshold it cannot reach within the budget.
        tiny.pop("stop.metric")
        tiny["stop.threshold"] = "1e12" if str(cfg.stop.mode).endswith("max") else "-1e12"
    return tiny


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_overlay_composes_and_runs(compose, tmp_path: Path, name: str) -> None:
    overlay = _overlay(name)
    full = compose(f"+experiment={name}", "mlflow.enabled=false")
    recurrent = build(full).train_config.recurrent
    tiny = _tiny_overrides(full, recurrent)
    cfg = compose(f"+experiment={name}", *(f"{k}={v}" for k, v in tiny.items()))

    # The overlay's options and values are what the job runs with.
    for entry in overlay.get("defaults", []):
        (key, option), *_ = entry.items()
        group = key.removeprefix("override /")
        if group in GROUPS:
            text = (CONF_DIR / group / f"{option}.yaml").read_text()
            option_cfg = yaml.safe_load(text)
            if text.startswith("# @package _global_"):  # e.g. env/cartpole.yaml: env + stop
                option_cfg = option_cfg[group]
            assert cfg[group]._target_ == option_cfg["_target_"], (group, option)
    assert recurrent is (cfg.model._target_ == "rl8.models.LSTMModel")
    settings = {k: v for k, v in overlay.items() if k not in ("defaults", "hydra")}
    for key, value in _leaves(settings).items():
        if key in tiny or (isinstance(value, str) and "${" in value):
            continue
        assert OmegaConf.select(cfg, key) == value, key

    objective = run(cfg, output_dir=tmp_path)

    every = int(tiny["eval.every"])
    horizon = int(tiny["trainer.horizon"])
    ckpt = checkpoint.load(tmp_path / checkpoint.CHECKPOINT_NAME)
    assert ckpt["trainer"]["trainer"]["algorithm/steps"] == 2 * every
    assert ckpt["trainer"]["trainer"]["env/steps"] == 2 * every * 4 * horizon
    assert ckpt["loop"]["eval_step"] == 2 * every  # the last evaluation ran at the end
    assert isinstance(objective, float) and math.isfinite(objective)
    if cfg.objective.startswith("eval/"):
        assert objective == ckpt["loop"]["last_eval"][cfg.objective]
    elif cfg.objective == "episodes/return_mean":  # of training episodes of 4 steps
        lowest = {"rl8.envs.CartPole": 4.0, "rl8.envs.Pendulum": -16.3 * 4}[cfg.env._target_]
        highest = 4.0 if cfg.env._target_ == "rl8.envs.CartPole" else 0.0
        assert lowest <= objective <= highest
    stored = OmegaConf.create(ckpt["config"])
    assert OmegaConf.to_container(stored) == OmegaConf.to_container(
        cfg, resolve=True, enum_to_str=True
    )
