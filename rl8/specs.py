"""Small tensor specs: the shape, dtype and bounds of observations, actions
and environment parameters.

rl8 keeps its own specs instead of depending on torchrl's or gymnasium's.
torchrl releases are tied to narrow torch versions (the original rl8 0.3.0
stopped importing when torchrl removed ``CompositeSpec``), and gymnasium's
spaces are numpy objects that would add a host round-trip to every check.
Three spec kinds cover every built-in model and distribution; anything else
can still be described with a custom model and distribution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["BoundedSpec", "DiscreteSpec", "Param", "Spec", "UnboundedSpec"]


@dataclass(frozen=True)
class Spec:
    """Base spec: a per-sub-environment ``shape`` and ``dtype``.

    Tensors described by a spec have shape ``[num_envs, *shape]``.
    """

    shape: tuple[int, ...]
    dtype: torch.dtype = torch.float32

    @property
    def numel(self) -> int:
        """Number of elements per sub-environment."""
        n = 1
        for s in self.shape:
            n *= s
        return n

    def zeros(self, batch: int, device: str | torch.device = "cpu") -> torch.Tensor:
        """Zeros of shape ``[batch, *shape]``."""
        return torch.zeros((batch, *self.shape), dtype=self.dtype, device=device)

    def check(self, x: torch.Tensor, name: str = "tensor") -> None:
        """Raise ``ValueError`` when ``x`` (with a leading batch dim) doesn't fit."""
        if tuple(x.shape[1:]) != tuple(self.shape):
            raise ValueError(
                f"{name} has per-env shape {tuple(x.shape[1:])}, but its spec says "
                f"{tuple(self.shape)} (full shape {tuple(x.shape)})."
            )


@dataclass(frozen=True)
class UnboundedSpec(Spec):
    """Real-valued tensor without bounds (e.g. observations)."""

    def __init__(self, *shape: int, dtype: torch.dtype = torch.float32) -> None:
        object.__setattr__(self, "shape", tuple(shape))
        object.__setattr__(self, "dtype", dtype)


@dataclass(frozen=True)
class BoundedSpec(Spec):
    """Real-valued tensor within ``[low, high]`` (e.g. continuous actions)."""

    low: float = -1.0
    high: float = 1.0

    def __init__(
        self, *shape: int, low: float, high: float, dtype: torch.dtype = torch.float32
    ) -> None:
        if not low < high:
            raise ValueError(f"BoundedSpec needs low < high, got low={low}, high={high}.")
        object.__setattr__(self, "shape", tuple(shape))
        object.__setattr__(self, "dtype", dtype)
        object.__setattr__(self, "low", float(low))
        object.__setattr__(self, "high", float(high))


@dataclass(frozen=True)
class DiscreteSpec(Spec):
    """``shape`` independent integer actions, each in ``[0, n)``.

    The default ``shape=(1,)`` is one categorical action per sub-env,
    stored as a ``[num_envs, 1]`` ``int64`` tensor.
    """

    n: int = 2

    def __init__(self, n: int, shape: tuple[int, ...] = (1,)) -> None:
        if n < 2:
            raise ValueError(f"DiscreteSpec needs n >= 2 choices, got n={n}.")
        object.__setattr__(self, "shape", tuple(shape))
        object.__setattr__(self, "dtype", torch.int64)
        object.__setattr__(self, "n", int(n))


@dataclass(frozen=True)
class Param:
    """A physical parameter an environment reads from its ``env_config``.

    Args:
        default: Value used when the config doesn't set the parameter.
        low: Smallest valid value (inclusive); ``None`` for unbounded.
        high: Largest valid value (inclusive); ``None`` for unbounded.
        doc: What the parameter means, with its unit.
        integer: Whether values must be whole numbers (e.g. a step count).
    """

    default: float
    low: float | None = None
    high: float | None = None
    doc: str = ""
    integer: bool = field(default=False)

    def validate(self, name: str, value: Any, owner: str = "env") -> None:
        """Raise ``ValueError`` naming ``name`` when ``value`` is out of bounds.

        ``value`` may be a number or a tensor (every element is checked).
        """
        if isinstance(value, torch.Tensor):
            if value.numel() == 0:
                return
            vmin, vmax = float(value.min()), float(value.max())
            finite = bool(torch.isfinite(value).all())
        else:
            try:
                vmin = vmax = float(value)
            except (TypeError, ValueError):
                raise ValueError(
                    f"{owner} parameter '{name}' must be a number or a tensor, got {value!r}."
                ) from None
            finite = math.isfinite(vmin)
        if not finite:
            raise ValueError(f"{owner} parameter '{name}' must be finite, got {value!r}.")
        if self.integer:
            whole = (
                bool((value == torch.round(value)).all())
                if isinstance(value, torch.Tensor)
                else vmin == round(vmin)
            )
            if not whole:
                raise ValueError(
                    f"{owner} parameter '{name}' must be a whole number, got {value!r}."
                )
        if (self.low is not None and vmin < self.low) or (
            self.high is not None and vmax > self.high
        ):
            raise ValueError(
                f"{owner} parameter '{name}'={_fmt(vmin, vmax)} is outside its valid range "
                f"[{self.low}, {self.high}]."
            )


def _fmt(vmin: float, vmax: float) -> str:
    return f"{vmin:g}" if vmin == vmax else f"[{vmin:g}, {vmax:g}]"
