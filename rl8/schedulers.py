"""Hyperparameter schedules over environment steps (learning rate, entropy).

A schedule is a list of ``(env_steps, value)`` points, sorted by env steps.
``kind="step"`` holds each value until the next point; ``kind="interp"``
interpolates linearly between points. Before the first point the first value
applies, after the last point the last value.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import torch

__all__ = ["EntropyScheduler", "LRScheduler", "ScheduleKind", "schedule_value", "validate_schedule"]

ScheduleKind = Literal["step", "interp"]


def validate_schedule(
    schedule: Sequence[Sequence[float]] | None, name: str, kind: str = "step"
) -> list[tuple[int, float]] | None:
    """Check a schedule's shape and order; ``ValueError`` names ``name``."""
    if kind not in ("step", "interp"):
        raise ValueError(f"{name}_kind must be 'step' or 'interp', got {kind!r}.")
    if schedule is None:
        return None
    points: list[tuple[int, float]] = []
    for p in schedule:
        if len(p) != 2:
            raise ValueError(f"{name} must be a list of [env_steps, value] pairs, got {p!r}.")
        points.append((int(p[0]), float(p[1])))
    if not points:
        raise ValueError(f"{name} must have at least one [env_steps, value] point.")
    steps = [s for s, _ in points]
    if steps != sorted(steps) or steps[0] < 0:
        raise ValueError(f"{name} env_steps must be >= 0 and increasing, got {steps}.")
    return points


def schedule_value(points: Sequence[tuple[int, float]], env_steps: int, kind: str) -> float:
    """The schedule's value at ``env_steps``."""
    steps = [s for s, _ in points]
    i = bisect.bisect_right(steps, env_steps) - 1
    if i < 0:
        return points[0][1]
    if kind == "step" or i == len(points) - 1:
        return points[i][1]
    (s0, v0), (s1, v1) = points[i], points[i + 1]
    return v0 + (v1 - v0) * (env_steps - s0) / max(1, s1 - s0)


class LRScheduler:
    """Sets the optimizer's learning rate from a schedule (constant without one).

    Args:
        optimizer: Optimizer whose param groups' ``lr`` is set.
        schedule: ``[(env_steps, lr), ...]`` or ``None``.
        kind: ``"step"`` (default) or ``"interp"``.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        /,
        *,
        schedule: Sequence[Sequence[float]] | None = None,
        kind: ScheduleKind = "step",
    ) -> None:
        self.optimizer = optimizer
        self.schedule = validate_schedule(schedule, "lr_schedule", kind)
        self.kind = kind
        self.step(0)

    @property
    def lr(self) -> float:
        """Current learning rate of the first param group."""
        return float(self.optimizer.param_groups[0]["lr"])

    def step(self, env_steps: int) -> float:
        """Update the learning rate for ``env_steps`` collected transitions.

        Returns:
            The learning rate now in effect (the optimizer's own without a
            schedule; rl8 1.0.0 returned 0.0 then).
        """
        if self.schedule is None:
            return self.lr
        lr = schedule_value(self.schedule, env_steps, self.kind)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr


class EntropyScheduler:
    """The entropy coefficient, constant or from a schedule.

    Args:
        entropy_coeff: Constant coefficient (used without a schedule).
        schedule: ``[(env_steps, coeff), ...]`` or ``None``.
        kind: ``"step"`` (default) or ``"interp"``.
    """

    def __init__(
        self,
        entropy_coeff: float,
        /,
        *,
        schedule: Sequence[Sequence[float]] | None = None,
        kind: ScheduleKind = "step",
    ) -> None:
        self.schedule = validate_schedule(schedule, "entropy_coeff_schedule", kind)
        self.kind = kind
        self.coeff = float(entropy_coeff)
        self.step(0)

    def step(self, env_steps: int) -> float:
        """Update the coefficient for ``env_steps`` collected transitions.

        Returns:
            The coefficient now in effect.
        """
        if self.schedule is not None:
            self.coeff = schedule_value(self.schedule, env_steps, self.kind)
        return self.coeff


if not TYPE_CHECKING:  # (kept from type checkers, which would accept any name)

    def __getattr__(name: str) -> Any:
        from ._removed import removed

        raise removed(__name__, name)
