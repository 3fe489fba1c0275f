"""PPO hyperparameters: one dataclass, defaults, and validation.

Every field of :class:`AlgorithmConfig` is a keyword argument of
:class:`~rl8.algorithms.Algorithm` / :class:`~rl8.algorithms.RecurrentAlgorithm`
(and of the trainers and ``TrainConfig``). :meth:`AlgorithmConfig.validate`
raises ``ValueError`` naming the field for any invalid value.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from ..schedulers import validate_schedule

__all__ = ["AlgorithmConfig", "RecurrentAlgorithmConfig"]


@dataclass
class AlgorithmConfig:
    """Feedforward PPO hyperparameters. Units: env steps are transitions
    summed over all sub-environments."""

    #: Environment config (parameter name -> value) passed at construction and reset.
    env_config: dict[str, Any] | None = None
    #: Model factory; default :class:`~rl8.models.MLPModel` (LSTM for recurrent).
    model_cls: Any = None
    #: Keyword arguments for ``model_cls``.
    model_config: dict[str, Any] | None = None
    #: Action distribution class; default from the action spec.
    distribution_cls: Any = None
    #: Transitions collected per sub-environment per :meth:`collect`. Default 32.
    horizon: int = 32
    #: Horizons between full env resets; ``-1`` (default) never resets after the
    #: first (the built-in envs reset finished sub-envs themselves).
    horizons_per_env_reset: int = -1
    #: Number of sub-environments. Default 512.
    num_envs: int = 512
    #: Optimizer class. Default ``torch.optim.Adam``.
    optimizer_cls: Any = torch.optim.Adam
    #: Optimizer keyword arguments. Default ``{"lr": 1e-3}``.
    optimizer_config: dict[str, Any] | None = None
    #: Accumulate gradients over all minibatches of an SGD iteration, one optimizer step each.
    accumulate_grads: bool = False
    #: Automatic mixed precision: bfloat16 on CPU, float16 (with grad scaling) on CUDA.
    enable_amp: bool = False
    #: Learning-rate schedule ``[[env_steps, lr], ...]``; ``None`` keeps it constant.
    lr_schedule: list[tuple[int, float]] | None = None
    #: ``"step"`` or ``"interp"``.
    lr_schedule_kind: Literal["step", "interp"] = "step"
    #: Entropy bonus weight. Default 0.0.
    entropy_coeff: float = 0.0
    #: Entropy coefficient schedule ``[[env_steps, coeff], ...]`` (overrides ``entropy_coeff``).
    entropy_coeff_schedule: list[tuple[int, float]] | None = None
    #: ``"step"`` or ``"interp"``.
    entropy_coeff_schedule_kind: Literal["step", "interp"] = "step"
    #: GAE lambda in [0, 1]. Default 0.95.
    gae_lambda: float = 0.95
    #: Discount factor in (0, 1]. Default 0.99.
    gamma: float = 0.99
    #: Transitions per SGD minibatch; ``None`` uses the whole buffer; ``"auto"``
    #: (default) uses ``min(4096, num_envs * horizon)``.
    sgd_minibatch_size: int | Literal["auto"] | None = "auto"
    #: Passes over the buffer per update. Default 4.
    num_sgd_iters: int = 4
    #: Shuffle samples between minibatches. Default True.
    shuffle_minibatches: bool = True
    #: PPO ratio clip. Default 0.2.
    clip_param: float = 0.2
    #: Value clip: new values stay within this distance of the collected ones
    #: (PPO2 style); ``None`` disables. Default 10.0.
    vf_clip_param: float | None = 10.0
    #: Dual clip (Ye et al. 2020) lower bound for negative advantages, > 1; ``None`` disables.
    dual_clip_param: float | None = None
    #: Value loss weight. Default 0.5.
    vf_coeff: float = 0.5
    #: Stop the update's SGD iterations when approximate KL > 1.5 x this; ``None`` disables.
    target_kl_div: float | None = None
    #: Gradient norm clip. Default 0.5.
    max_grad_norm: float = 0.5
    #: Normalize advantages over the buffer. Default True.
    normalize_advantages: bool = True
    #: Scale rewards by the std of discounted returns. Default True.
    normalize_rewards: bool = True
    #: ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... or ``"auto"`` (CUDA when available).
    device: str | torch.device = "auto"
    #: Largest number of transitions pushed through the model at once in an
    #: update; larger minibatches are split with gradients accumulated (same
    #: result, better cache use). Default 4096.
    update_chunk_size: int = 4096

    @classmethod
    def fields(cls) -> list[str]:
        """Names of all hyperparameters."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> AlgorithmConfig:
        """Build from keyword arguments; unknown names raise ``ValueError``."""
        known = set(cls.fields())
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise ValueError(
                f"Unknown {cls.__name__} field(s): {', '.join(unknown)}. "
                f"Known fields: {', '.join(sorted(known))}."
            )
        return cls(**kwargs)

    def validate(self) -> AlgorithmConfig:
        """Raise ``ValueError`` naming the first invalid field. Returns ``self``."""
        _int(self, "horizon", 1)
        _int(self, "num_envs", 1)
        _int(self, "num_sgd_iters", 1)
        _int(self, "update_chunk_size", 1)
        if not isinstance(self.horizons_per_env_reset, int) or not (
            self.horizons_per_env_reset >= 1 or self.horizons_per_env_reset == -1
        ):
            raise ValueError(
                f"horizons_per_env_reset must be a positive int or -1 (never reset), "
                f"got {self.horizons_per_env_reset!r}."
            )
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma}.")
        if not 0.0 <= self.gae_lambda <= 1.0:
            raise ValueError(f"gae_lambda must be in [0, 1], got {self.gae_lambda}.")
        _positive(self, "clip_param")
        _positive(self, "max_grad_norm")
        _nonneg(self, "vf_coeff")
        _nonneg(self, "entropy_coeff")
        if self.vf_clip_param is not None:
            _positive(self, "vf_clip_param")
        if self.target_kl_div is not None:
            _positive(self, "target_kl_div")
        if self.dual_clip_param is not None and not self.dual_clip_param > 1.0:
            raise ValueError(f"dual_clip_param must be > 1 (or None), got {self.dual_clip_param}.")
        buffer = self.num_envs * self.horizon
        if self.sgd_minibatch_size == "auto":
            pass
        elif self.sgd_minibatch_size is not None:
            _int(self, "sgd_minibatch_size", 1)
            if self.sgd_minibatch_size > buffer:
                raise ValueError(
                    f"sgd_minibatch_size={self.sgd_minibatch_size} is larger than the buffer "
                    f"(num_envs * horizon = {self.num_envs} * {self.horizon} = {buffer}); "
                    "lower it, or set it to None to use the whole buffer."
                )
        validate_schedule(self.lr_schedule, "lr_schedule", self.lr_schedule_kind)
        validate_schedule(
            self.entropy_coeff_schedule, "entropy_coeff_schedule", self.entropy_coeff_schedule_kind
        )
        if self.optimizer_config is not None and not isinstance(self.optimizer_config, dict):
            raise ValueError(f"optimizer_config must be a dict, got {self.optimizer_config!r}.")
        if self.model_config is not None and not isinstance(self.model_config, dict):
            raise ValueError(f"model_config must be a dict, got {self.model_config!r}.")
        dev = str(self.device)
        if dev != "auto":
            try:
                torch.device(dev)
            except RuntimeError:
                raise ValueError(
                    f"device must be 'auto', 'cpu', 'cuda[:N]', ..., got {dev!r}."
                ) from None
        return self

    @property
    def minibatch_size(self) -> int:
        """The resolved number of transitions per SGD minibatch."""
        buffer = self.num_envs * self.horizon
        if self.sgd_minibatch_size == "auto":
            return min(4096, buffer)
        return self.sgd_minibatch_size or buffer


@dataclass
class RecurrentAlgorithmConfig(AlgorithmConfig):
    """Recurrent PPO hyperparameters: :class:`AlgorithmConfig` plus truncated BPTT."""

    #: Length of the sequences backpropagated through; divides ``horizon``. Default 8.
    seq_len: int = 8
    #: Sequences between resets of the recurrent state while collecting;
    #: ``-1`` resets only with the environment. Default -1.
    seqs_per_state_reset: int = -1
    horizon: int = field(default=32)

    def validate(self) -> RecurrentAlgorithmConfig:
        super().validate()
        _int(self, "seq_len", 1)
        if self.horizon % self.seq_len:
            raise ValueError(
                f"horizon={self.horizon} must be a multiple of seq_len={self.seq_len}."
            )
        if not isinstance(self.seqs_per_state_reset, int) or not (
            self.seqs_per_state_reset >= 1 or self.seqs_per_state_reset == -1
        ):
            raise ValueError(
                f"seqs_per_state_reset must be a positive int or -1, got {self.seqs_per_state_reset!r}."
            )
        if self.minibatch_size % self.seq_len:
            raise ValueError(
                f"sgd_minibatch_size={self.minibatch_size} must be a multiple of "
                f"seq_len={self.seq_len} (minibatches hold whole sequences)."
            )
        return self


def _int(cfg: Any, name: str, minimum: int) -> None:
    v = getattr(cfg, name)
    if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {v!r}.")


def _positive(cfg: Any, name: str) -> None:
    v = getattr(cfg, name)
    if isinstance(v, bool) or not isinstance(v, int | float) or not v > 0:
        raise ValueError(f"{name} must be a number > 0, got {v!r}.")


def _nonneg(cfg: Any, name: str) -> None:
    v = getattr(cfg, name)
    if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
        raise ValueError(f"{name} must be a number >= 0, got {v!r}.")
