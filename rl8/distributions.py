"""Action distributions built from a model's output features.

These are small hand-written classes rather than ``torch.distributions``
because the hot loop samples them millions of times per second and
``torch.distributions`` adds argument validation, broadcasting checks and
Python-level shape logic to every call. Each class needs exactly three
methods for PPO (sample, log-probability, entropy) plus a deterministic mode.

Shapes: features ``[B, F]``; actions ``[B, *action_spec.shape]``;
``logp`` and ``entropy`` return ``[B]``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F

from .specs import BoundedSpec, DiscreteSpec, Spec, UnboundedSpec

__all__ = ["Categorical", "Distribution", "Normal", "SquashedNormal", "default_distribution_cls"]


class Distribution:
    """Base class: a batch of action distributions.

    Args:
        features: Model output features ``[B, F]``.
        action_spec: The environment's action spec.
    """

    def __init__(self, features: torch.Tensor, action_spec: Spec) -> None:
        self.features = features
        self.action_spec = action_spec

    @staticmethod
    def num_features(action_spec: Spec) -> int:
        """Number of features a model must output for ``action_spec``."""
        raise NotImplementedError

    def sample(self) -> torch.Tensor:
        """Random actions ``[B, *action_shape]``."""
        raise NotImplementedError

    def deterministic_sample(self) -> torch.Tensor:
        """The most likely (mode) actions ``[B, *action_shape]``."""
        raise NotImplementedError

    def logp(self, actions: torch.Tensor) -> torch.Tensor:
        """Log-probability of ``actions``, summed over action dims: ``[B]``."""
        raise NotImplementedError

    def entropy(self) -> torch.Tensor:
        """Entropy (or an estimate), summed over action dims: ``[B]``."""
        raise NotImplementedError


class Categorical(Distribution):
    """Independent categoricals, one per element of a :class:`DiscreteSpec`.

    Features are logits ``[B, prod(shape) * n]``.
    """

    def __init__(self, features: torch.Tensor, action_spec: Spec) -> None:
        super().__init__(features, action_spec)
        assert isinstance(action_spec, DiscreteSpec)
        self.logits = F.log_softmax(features.view(features.shape[0], -1, action_spec.n), dim=-1)

    @staticmethod
    def num_features(action_spec: Spec) -> int:
        assert isinstance(action_spec, DiscreteSpec)
        return action_spec.numel * action_spec.n

    def sample(self) -> torch.Tensor:
        # Gumbel-max: one fused pass, no multinomial bookkeeping.
        u = torch.rand_like(self.logits).clamp_(1e-20, 1.0)
        a = torch.argmax(self.logits - torch.log(-torch.log(u)), dim=-1)
        return a.view(-1, *self.action_spec.shape)

    def deterministic_sample(self) -> torch.Tensor:
        return torch.argmax(self.logits, dim=-1).view(-1, *self.action_spec.shape)

    def logp(self, actions: torch.Tensor) -> torch.Tensor:
        idx = actions.reshape(actions.shape[0], -1, 1).long()
        return self.logits.gather(-1, idx).squeeze(-1).sum(-1)

    def entropy(self) -> torch.Tensor:
        return -(self.logits.exp() * self.logits).sum(-1).sum(-1)


class Normal(Distribution):
    """Diagonal Gaussian. Features are ``[mean, log_std]``, each ``[B, D]``.

    Actions are not clipped here; environments clip to their bounds.
    """

    min_log_std: ClassVar[float] = -20.0
    max_log_std: ClassVar[float] = 2.0

    def __init__(self, features: torch.Tensor, action_spec: Spec) -> None:
        super().__init__(features, action_spec)
        mean, log_std = features.chunk(2, dim=-1)
        self.mean = mean
        self.log_std = log_std.clamp(self.min_log_std, self.max_log_std)
        self.std = self.log_std.exp()

    @staticmethod
    def num_features(action_spec: Spec) -> int:
        return 2 * action_spec.numel

    def _shape(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(-1, *self.action_spec.shape)

    def sample(self) -> torch.Tensor:
        return self._shape(self.mean + self.std * torch.randn_like(self.mean))

    def deterministic_sample(self) -> torch.Tensor:
        return self._shape(self.mean)

    def logp(self, actions: torch.Tensor) -> torch.Tensor:
        a = actions.reshape(actions.shape[0], -1)
        z = (a - self.mean) / self.std
        return (-0.5 * z * z - self.log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    def entropy(self) -> torch.Tensor:
        return (0.5 + 0.5 * math.log(2 * math.pi) + self.log_std).sum(-1)


class SquashedNormal(Normal):
    """Gaussian squashed by ``tanh`` and scaled into a :class:`BoundedSpec`.

    Actions always lie within ``[low, high]``. The entropy is the Gaussian's
    (the usual estimate; the exact one has no closed form).
    """

    def __init__(self, features: torch.Tensor, action_spec: Spec) -> None:
        super().__init__(features, action_spec)
        low, high = _bounds(action_spec)
        self.scale = (high - low) / 2
        self.center = (high + low) / 2

    def _squash(self, u: torch.Tensor) -> torch.Tensor:
        return self._shape(torch.tanh(u) * self.scale + self.center)

    def sample(self) -> torch.Tensor:
        return self._squash(self.mean + self.std * torch.randn_like(self.mean))

    def deterministic_sample(self) -> torch.Tensor:
        return self._squash(self.mean)

    def logp(self, actions: torch.Tensor) -> torch.Tensor:
        y = ((actions.reshape(actions.shape[0], -1) - self.center) / self.scale).clamp(
            -0.999999, 0.999999
        )
        u = torch.atanh(y)
        z = (u - self.mean) / self.std
        log_det = torch.log(self.scale * (1 - y * y) + 1e-6)
        return (-0.5 * z * z - self.log_std - 0.5 * math.log(2 * math.pi) - log_det).sum(-1)


def _bounds(spec: Spec) -> tuple[float, float]:
    if isinstance(spec, BoundedSpec):
        return spec.low, spec.high
    return -1.0, 1.0


def default_distribution_cls(action_spec: Spec) -> type[Distribution]:
    """Categorical for discrete actions, SquashedNormal for bounded, Normal otherwise."""
    if isinstance(action_spec, DiscreteSpec):
        return Categorical
    if isinstance(action_spec, BoundedSpec):
        return SquashedNormal
    if isinstance(action_spec, UnboundedSpec):
        return Normal
    raise TypeError(
        f"No default distribution for action spec {action_spec!r}: pass distribution_cls."
    )


if not TYPE_CHECKING:  # (kept from type checkers, which would accept any name)

    def __getattr__(name: str) -> Any:
        from ._removed import removed

        raise removed(__name__, name)
