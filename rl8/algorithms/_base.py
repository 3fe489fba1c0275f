"""What both PPO algorithms share: construction, the SGD loop, state."""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..env import Env, EnvFactory, check_reset_output, check_specs, check_step_output, make_env
from ..schedulers import EntropyScheduler, LRScheduler
from .config import AlgorithmConfig, resolve_device
from .ppo import STAT_KEYS, PPOLoss


@dataclass
class AlgorithmState:
    """Running counters of an algorithm."""

    #: Horizons collected (training and evaluation).
    horizons: int = 0
    #: Policy updates done.
    updates: int = 0
    #: Transitions collected for training.
    env_steps: int = 0
    #: Whether the buffer holds a collection not yet used by :meth:`step`.
    buffered: bool = False


class AlgorithmBase:
    """Builds the env, policy, optimizer and schedulers from a validated config."""

    config: AlgorithmConfig
    env: Env
    policy: Any

    def __init__(self, env_cls: EnvFactory, config: AlgorithmConfig, policy_cls: type) -> None:
        self.config = config.validate()
        self.hparams = config  # the original's name for the same thing
        self.device = resolve_device(config.device)
        self.env = make_env(
            env_cls, config.num_envs, config.horizon, config=config.env_config, device=self.device
        )
        self.policy = policy_cls(
            self.env.observation_spec,
            self.env.action_spec,
            model_cls=config.model_cls,
            model_config=config.model_config,
            distribution_cls=config.distribution_cls,
            device=self.device,
        )
        optimizer_config = config.optimizer_kwargs
        try:
            self.optimizer: torch.optim.Optimizer = config.optimizer_cls(
                self.policy.model.parameters(), **optimizer_config
            )
        except TypeError as e:
            raise ValueError(
                f"optimizer_config {optimizer_config} is invalid for "
                f"{getattr(config.optimizer_cls, '__name__', config.optimizer_cls)}: {e}"
            ) from None
        self.lr_scheduler = LRScheduler(
            self.optimizer, schedule=config.lr_schedule, kind=config.lr_schedule_kind
        )
        self.entropy_scheduler = EntropyScheduler(
            config.entropy_coeff,
            schedule=config.entropy_coeff_schedule,
            kind=config.entropy_coeff_schedule_kind,
        )
        amp_dtype = torch.float16 if self.device.type == "cuda" else torch.bfloat16
        self._autocast = (
            (lambda: torch.autocast(self.device.type, dtype=amp_dtype))
            if config.enable_amp
            else contextlib.nullcontext
        )
        self.grad_scaler = torch.amp.GradScaler(
            self.device.type, enabled=config.enable_amp and self.device.type == "cuda"
        )
        self.state = AlgorithmState()
        self._running_return = torch.zeros(config.num_envs, device=self.device)

    # -- environment protocol checks (first collect only) ----------------------
    #: Whether a collect has checked the env's outputs (then it skips the checks).
    _env_checked: bool = False

    def _env_reset(self, env_config: Mapping[str, Any] | None) -> torch.Tensor:
        obs = self.env.reset(config=env_config)
        if not self._env_checked:
            check_reset_output(self.env, obs)
        return obs

    def _checked_env_step(self, action: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.env.step(action)
        check_step_output(self.env, out)
        return out

    def _env_step_fn(self) -> Callable[[torch.Tensor], tuple[torch.Tensor, ...]]:
        """``env.step``, checked during the first collect only (no per-step cost later)."""
        return self.env.step if self._env_checked else self._checked_env_step

    def validate(self) -> AlgorithmBase:
        """Check the hyperparameters and the environment's specs (rl8 1.0.0's
        ``Algorithm.validate``). The shapes of what the environment returns
        are checked by the first :meth:`collect`. Returns ``self``.

        Raises:
            ValueError: An invalid hyperparameter (named).
            rl8.env.EnvProtocolError: Specs of the rl8 1.0.0 form.
        """
        self.config.validate()
        check_specs(self.env)
        return self

    # -- properties kept from the original API ---------------------------------
    @property
    def horizons_per_env_reset(self) -> int:
        return self.config.horizons_per_env_reset

    @property
    def params(self) -> dict[str, Any]:
        """Hyperparameters as loggable values (classes as dotted names)."""
        out: dict[str, Any] = {}
        for k in self.config.fields():
            v = getattr(self.config, k)
            if isinstance(v, type):
                v = f"{v.__module__}.{v.__qualname__}"
            elif callable(v):
                v = getattr(v, "__qualname__", repr(v))
            out[k] = v
        out["device"] = str(self.device)
        return out

    def _needs_env_reset(self) -> bool:
        hper = self.config.horizons_per_env_reset
        return self.state.horizons == 0 or (hper > 0 and self.state.horizons % hper == 0)

    @property
    def env_reset_due(self) -> bool:
        """Whether the next :meth:`collect` resets the environment (and so
        applies its ``env_config``)."""
        return self._force_reset or self._needs_env_reset()

    def collect(
        self, *, env_config: Mapping[str, Any] | None = None, deterministic: bool = False
    ) -> dict[str, float]:
        """Collect one horizon from every sub-environment (see subclasses)."""
        raise NotImplementedError

    def step(self) -> dict[str, float]:
        """Update the policy once with the collected buffer (see subclasses)."""
        raise NotImplementedError

    def memory_stats(self) -> dict[str, float]:
        """CUDA memory in MiB (empty on CPU)."""
        if self.device.type != "cuda":
            return {}
        return {
            "memory/allocated_mb": torch.cuda.memory_allocated(self.device) / 2**20,
            "memory/reserved_mb": torch.cuda.memory_reserved(self.device) / 2**20,
        }

    # -- the update loop --------------------------------------------------------
    def _sgd(
        self,
        num_samples: int,
        minibatch: int,
        chunk: int,
        loss_fn: Callable[[torch.Tensor | slice], PPOLoss],
    ) -> dict[str, float]:
        """Run ``num_sgd_iters`` passes of minibatch SGD over ``num_samples``.

        ``loss_fn(index)`` computes the loss of the samples ``index`` selects.
        Minibatches larger than ``chunk`` samples are split into chunks whose
        gradients add up to the minibatch's. Returns averaged loss stats; the
        only host/device sync is the final one (plus one per minibatch when
        ``target_kl_div`` is set).
        """
        cfg = self.config
        model: nn.Module = self.policy.model
        params = [p for p in model.parameters() if p.requires_grad]
        num_minibatches = math.ceil(num_samples / minibatch)
        shuffle = cfg.shuffle_minibatches and num_minibatches > 1
        accumulate = cfg.accumulate_grads
        sums = torch.zeros(len(STAT_KEYS), device=self.device)
        count = 0
        stopped_early = False
        self.optimizer.zero_grad(set_to_none=True)
        for _ in range(cfg.num_sgd_iters):
            order = torch.randperm(num_samples, device=self.device) if shuffle else None
            for b in range(num_minibatches):
                lo, hi = b * minibatch, min(num_samples, (b + 1) * minibatch)
                mb_stats = torch.zeros(len(STAT_KEYS), device=self.device)
                for c_lo in range(lo, hi, chunk):
                    c_hi = min(hi, c_lo + chunk)
                    index = order[c_lo:c_hi] if order is not None else slice(c_lo, c_hi)
                    weight = (c_hi - c_lo) / (hi - lo)
                    with self._autocast():
                        loss = loss_fn(index)
                    # The loss is a mean over the chunk. Weighted by the chunk's share
                    # of the minibatch, the gradients add up to the minibatch mean's;
                    # accumulated over a pass, by its share of the whole buffer (the
                    # last minibatch may be smaller than the others).
                    scale = (c_hi - c_lo) / num_samples if accumulate else weight
                    self.grad_scaler.scale(loss.total * scale).backward()
                    mb_stats += loss.stats().float() * weight
                sums += mb_stats
                count += 1
                if cfg.target_kl_div is not None and float(mb_stats[4]) > 1.5 * cfg.target_kl_div:
                    # KL early stopping: drop this minibatch's gradient and end the update.
                    self.optimizer.zero_grad(set_to_none=True)
                    stopped_early = True
                    break
                if not accumulate or b == num_minibatches - 1:
                    self.grad_scaler.unscale_(self.optimizer)
                    nn.utils.clip_grad_norm_(params, cfg.max_grad_norm, foreach=True)
                    self.grad_scaler.step(self.optimizer)
                    self.grad_scaler.update()
                    self.optimizer.zero_grad(set_to_none=True)
            if stopped_early:
                break
        values = (sums / max(1, count)).tolist()
        stats = dict(zip(STAT_KEYS, values))
        stats["monitors/stopped_early"] = float(stopped_early)
        stats["monitors/minibatches"] = float(count)
        return stats

    def _finish_step(self, stats: dict[str, float], t0: float) -> dict[str, float]:
        self.state.updates += 1
        self.state.buffered = False
        self.lr_scheduler.step(self.state.env_steps)
        self.entropy_scheduler.step(self.state.env_steps)
        stats["coefficients/entropy"] = self.entropy_scheduler.coeff
        stats["coefficients/vf"] = self.config.vf_coeff
        stats["coefficients/lr"] = self.lr_scheduler.lr
        stats["profiling/step_ms"] = (time.perf_counter() - t0) * 1e3
        return stats

    @staticmethod
    def _collect_stats(rewards: torch.Tensor) -> dict[str, float]:
        """Summary stats of ``rewards`` ``[N, T]`` with a single host sync."""
        returns = rewards.sum(1)
        r_std, r_mean = torch.std_mean(returns)
        w_std, w_mean = torch.std_mean(rewards)
        values = torch.stack(
            [
                returns.min(),
                returns.max(),
                r_mean,
                r_std,
                rewards.min(),
                rewards.max(),
                w_mean,
                w_std,
            ]
        ).tolist()
        keys = (
            "returns/min", "returns/max", "returns/mean", "returns/std",
            "rewards/min", "rewards/max", "rewards/mean", "rewards/std",
        )  # fmt: skip
        return dict(zip(keys, values))

    # -- state -------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Model, optimizer, counters and carried-over tensors (all plain types)."""
        return {
            "model": self.policy.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "grad_scaler": self.grad_scaler.state_dict(),
            "state": {
                "horizons": self.state.horizons,
                "updates": self.state.updates,
                "env_steps": self.state.env_steps,
            },
            "entropy_coeff": self.entropy_scheduler.coeff,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`. The environment restarts from a reset."""
        self.policy.model.load_state_dict(state["model"])
        # Optimizer.load_state_dict keeps the given state tensors (Adam's moments)
        # when dtype and device match, and steps them in place: without a copy,
        # a state dict taken from a live algorithm would tie the two together.
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        if state.get("grad_scaler"):
            self.grad_scaler.load_state_dict(state["grad_scaler"])
        s = state["state"]
        self.state = AlgorithmState(
            horizons=int(s["horizons"]), updates=int(s["updates"]), env_steps=int(s["env_steps"])
        )
        self.entropy_scheduler.coeff = float(state["entropy_coeff"])
        self.lr_scheduler.step(self.state.env_steps)
        self.entropy_scheduler.step(self.state.env_steps)
        self._force_reset = True

    _force_reset: bool = False
