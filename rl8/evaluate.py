"""``python -m rl8.evaluate run=<job> [key=value ...]``: run a trained policy
again, for whole episodes, and report their returns and lengths.

The job is named by its output dir (``outputs/<date>/<time>``), its
``checkpoint.pt`` or its MLflow run id. Its environment and policy are
rebuilt from the config and weights in the checkpoint; every one of
``episodes`` sub-environments then runs exactly one episode from a reset (so
long episodes are not under-represented), deterministic by default. The
table of episode return and length (mean, std, min, max) is printed and
logged to a child run of the job's MLflow run (metrics ``evaluate/...``).

Keys (``key=value``, like the train command's overrides)::

    run=...               the job (required)
    episodes=20           episodes, one per sub-environment
    deterministic=true    the policy's mode instead of sampling
    seed=0                seeds torch, numpy, random
    device=null           null: the job's; or auto, cpu, cuda, ...
    max_steps=100000      steps per episode before giving up on it
    record=false          also write a GIF of record_episodes episodes of one sub-env
    record_episodes=2     (the env must draw itself: the built-in CartPole and Pendulum,
    fps=30                gymnasium envs with env.render_mode=rgb_array)
    output=null           the GIF's path (default: <job dir>/evaluate-seed<seed>.gif)
    mlflow=true           log a child run of the job's run (when it was tracked)
    tracking_uri=null     the MLflow store of a run id (default: MLflow's)
    trusted=false         build callables the job's config names outside rl8's configs
                          (a custom env class; only for checkpoints you trust)
    env.<key>=...         overrides of the job's env node, e.g. env.config.length=1.5
                          (env._target_=... another env class: replaces the node)

An override that changes the observation or action shapes fails, naming
the mismatch. Examples::

    python -m rl8.evaluate run=outputs/2026-11-28/10-00-00
    python -m rl8.evaluate run=outputs/2026-11-28/10-00-00 env.config.length=1.5 episodes=100
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from .errors import ConfigError

__all__ = ["EpisodeResults", "EvaluateConf", "evaluate", "main", "run_episodes"]

log = logging.getLogger("rl8.evaluate")


@dataclass
class EvaluateConf:
    """The keys of ``python -m rl8.evaluate`` (see the module docstring)."""

    run: str = ""
    episodes: int = 20
    deterministic: bool = True
    seed: int = 0
    device: str | None = None
    max_steps: int = 100_000
    record: bool = False
    record_episodes: int = 2
    fps: int = 30
    output: str | None = None
    mlflow: bool = True
    tracking_uri: str | None = None
    trusted: bool = False
    env: dict[str, Any] = field(default_factory=dict)


@dataclass
class EpisodeResults:
    """Returns and lengths of the evaluated episodes (one per sub-environment)."""

    returns: torch.Tensor
    lengths: torch.Tensor
    #: Environment steps taken (all sub-environments).
    env_steps: int
    #: The recording, when one was asked for.
    gif: Path | None = None

    def stats(self, prefix: str = "") -> dict[str, float]:
        """``return_mean``, ``return_std``, ``return_min``, ``return_max`` and
        the same for ``length``, plus ``episodes``."""
        out: dict[str, float] = {f"{prefix}episodes": float(self.returns.numel())}
        for name, x in (("return", self.returns.double()), ("length", self.lengths.double())):
            std = float(x.std()) if x.numel() > 1 else 0.0
            out[f"{prefix}{name}_mean"] = float(x.mean())
            out[f"{prefix}{name}_std"] = std
            out[f"{prefix}{name}_min"] = float(x.min())
            out[f"{prefix}{name}_max"] = float(x.max())
        return out

    def table(self) -> str:
        s = self.stats()
        lines = [f"{'':8}{'mean':>10}{'std':>10}{'min':>10}{'max':>10}"]
        for name in ("return", "length"):
            cells = "".join(f"{s[f'{name}_{k}']:>10.4g}" for k in ("mean", "std", "min", "max"))
            lines.append(f"{name:8}{cells}")
        return "\n".join(lines)


@torch.no_grad()
def run_episodes(
    algorithm: Any,
    *,
    deterministic: bool = True,
    max_steps: int = 100_000,
    env_config: Mapping[str, Any] | None = None,
) -> EpisodeResults:
    """Run one episode in each of the algorithm's sub-environments, from a
    reset, with its policy (its recurrent state carried through the episode).

    Raises:
        ConfigError: The environment reports no episode ends (``terminated``
            or ``truncated``), or an episode lasts longer than ``max_steps``.
    """
    from .env import as_step
    from .render import policy_act

    env, device = algorithm.env, algorithm.device
    n = env.num_envs
    act = policy_act(algorithm.policy, deterministic=deterministic)
    obs = env.reset(config=env_config)
    running = torch.zeros(n, dtype=torch.float64, device=device)
    length = torch.zeros(n, dtype=torch.int64, device=device)
    returns = torch.zeros_like(running)
    lengths = torch.zeros_like(length)
    finished = torch.zeros(n, dtype=torch.bool, device=device)
    for t in range(max_steps):
        step = as_step(env.step(act(obs)))
        if step.terminated is None and step.truncated is None:
            raise ConfigError(
                f"{type(env).__name__} reports no episode ends (terminated/truncated), so it "
                "has no episodes to evaluate; watch its per-step reward in training instead."
            )
        done = torch.zeros_like(finished)
        for flag in (step.terminated, step.truncated):
            if flag is not None:
                done |= flag.reshape(-1)
        running += step.reward.reshape(-1)
        length += 1
        first = done & ~finished
        returns = torch.where(first, running, returns)
        lengths = torch.where(first, length, lengths)
        finished |= done
        running = torch.where(done, 0.0, running)
        length = torch.where(done, 0, length)
        obs = step.obs
        if t % 16 == 15 and bool(finished.all()):  # one host sync every 16 steps
            break
    if not bool(finished.all()):
        raise ConfigError(
            f"{int((~finished).sum())} of {n} episodes did not end within max_steps="
            f"{max_steps}; raise max_steps."
        )
    return EpisodeResults(returns.cpu(), lengths.cpu(), env_steps=(t + 1) * n)


def evaluate(conf: EvaluateConf) -> EpisodeResults:
    """Evaluate the job ``conf.run`` (see the module docstring) and log the
    results to a child MLflow run of the job's run."""
    from . import checkpoint as ckpt_lib
    from .runs import open_run

    _check(conf)
    trained = open_run(conf.run, tracking_uri=conf.tracking_uri)
    trainer = trained.build_trainer(
        env=conf.env or None, num_envs=conf.episodes, device=conf.device, trusted=conf.trusted
    )
    recorder = None
    if conf.record:
        from .render import check_can_render

        recorder = trained.build_trainer(
            env=conf.env or None, num_envs=1, device=conf.device, trusted=conf.trusted
        )
        try:
            check_can_render(recorder.algorithm.env)  # before any episode runs
        except (TypeError, ValueError) as e:
            recorder.close()
            trainer.close()
            raise ConfigError(f"record=true: {e}") from None
    ckpt_lib.seed_everything(conf.seed)
    try:
        results = run_episodes(
            trainer.algorithm, deterministic=conf.deterministic, max_steps=conf.max_steps
        )
        if recorder is not None:
            default = trained.checkpoint_path.parent / f"evaluate-seed{conf.seed}.gif"
            results.gif = record_gif(
                recorder.algorithm.env,
                recorder.algorithm.policy,
                Path(conf.output) if conf.output else default,
                episodes=conf.record_episodes,
                deterministic=conf.deterministic,
                fps=conf.fps,
            )
    finally:
        trainer.close()
        if recorder is not None:
            recorder.close()
    mode = "deterministic" if conf.deterministic else "sampled"
    print(f"{trained.checkpoint_path}: {conf.episodes} episodes ({mode})\n{results.table()}")
    if results.gif is not None:
        print(f"recording: {results.gif}")
    if conf.mlflow and trained.mlflow_run_id:
        _log(trained, conf, results)
    return results


def record_gif(
    env: Any,
    policy: Any,
    path: Path,
    *,
    episodes: int = 2,
    deterministic: bool = True,
    fps: int = 30,
    max_steps: int = 2500,
) -> Path:
    """Record ``episodes`` episodes of ``env``'s sub-environment 0 with
    ``policy`` and write them to the GIF ``path`` (``fps`` frames per second);
    at most ``max_steps`` steps (frames are kept in memory: ~0.4 MB each).

    Raises:
        ConfigError: The environment cannot draw itself.
    """
    from .render import policy_act, record_episodes, save_gif

    act = policy_act(policy, deterministic=deterministic)
    frames = record_episodes(env, act, episodes=episodes, max_steps=max_steps)
    return save_gif(frames, path, fps=fps)


def _log(trained: Any, conf: EvaluateConf, results: EpisodeResults) -> None:
    from .tracking import MlflowTracker

    cfg = trained.cfg
    tracker = MlflowTracker(
        tracking_uri=conf.tracking_uri or cfg.mlflow.tracking_uri,
        experiment_name=cfg.mlflow.experiment_name,
        run_name=f"evaluate-{conf.episodes}ep-seed{conf.seed}",
        parent_run_id=trained.mlflow_run_id,
        tags={"rl8.command": "evaluate", "rl8.env_overrides": OmegaConf.to_yaml(conf.env)},
    )
    try:
        params = {k.name: getattr(conf, k.name) for k in fields(conf) if k.name != "env"}
        tracker.log_params({**params, "env": dict(conf.env)})
        env_steps = int(trained.checkpoint["trainer"]["trainer"]["env/steps"])
        tracker.log_metrics(results.stats("evaluate/"), step=env_steps)
        if results.gif is not None:
            tracker.log_artifact(results.gif)
    except BaseException:
        tracker.close("FAILED")
        raise
    tracker.close("FINISHED")
    log.info("logged to MLflow run %s (child of %s)", tracker.run_id, trained.mlflow_run_id)


def _check(conf: EvaluateConf) -> None:
    if not conf.run:
        raise ConfigError("run is required: run=<job output dir | checkpoint.pt | MLflow run id>.")
    if conf.episodes < 1:
        raise ConfigError(f"episodes={conf.episodes} must be >= 1.")
    for key in ("max_steps", "record_episodes", "fps"):
        if getattr(conf, key) < 1:
            raise ConfigError(f"{key}={getattr(conf, key)} must be >= 1.")


def parse(argv: Sequence[str]) -> EvaluateConf:
    """``key=value`` arguments as an :class:`EvaluateConf` (see :func:`rl8.cli.parse`)."""
    from .cli import parse as parse_keys

    return parse_keys(argv, EvaluateConf, "python -m rl8.evaluate")


def main() -> int:
    """The command line; returns the exit status (0, or 1 with a one-line error)."""
    from .cli import run_command

    return run_command(__doc__, EvaluateConf, "python -m rl8.evaluate", evaluate)


def _cli() -> None:
    sys.exit(main())


if __name__ == "__main__":
    _cli()
