"""The batched environment protocol and two dummy environments.

An rl8 environment holds ``num_envs`` independent sub-environments and
advances all of them at once with tensor ops. The algorithm owns its
construction::

    env = env_cls(num_envs, horizon, config=env_config, device=device)
    obs = env.reset(config=env_config)        # [num_envs, *observation_spec.shape]
    obs, reward = env.step(action)            # reward: [num_envs] (or [num_envs, 1])
    obs, reward, terminated = env.step(action)  # optionally: [num_envs] bool

An environment that has episodes resets finished sub-environments itself,
inside the batch (``obs`` is then the new episode's first observation). It
may return a third ``terminated`` flag for sub-environments whose episode
ended in a terminal state (e.g. a pole that fell): PPO then stops
bootstrapping value across that step, which makes failure cost all future
reward instead of one step's. Episodes cut by a time limit are not
terminated; without the flag every environment is treated as continuing. The algorithm resets the whole batch every ``horizons_per_env_reset``
horizons (never when that is ``-1``).

Physical parameters come from ``env_config``. An environment declares them in
:attr:`Env.params` (name -> :class:`~rl8.specs.Param` with default and
bounds); each value may be a number or a per-sub-environment tensor of shape
``[num_envs]``. Unknown names and out-of-bound values raise ``ValueError``
naming the parameter, at construction and at every reset.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Protocol

import torch

from .specs import DiscreteSpec, Param, Spec, UnboundedSpec

__all__ = ["ContinuousDummyEnv", "DiscreteDummyEnv", "Env", "EnvFactory"]

Device = str | torch.device


class Env:
    """Base class of batched environments.

    Subclasses set :attr:`observation_spec` and :attr:`action_spec`, declare
    :attr:`params`, and implement :meth:`reset` and :meth:`step`.

    Args:
        num_envs: Number of sub-environments stepped together.
        horizon: Steps the algorithm collects per horizon (informational;
            checked against :attr:`max_horizon`). ``None`` for unknown.
        config: Environment config (parameter name -> number or
            ``[num_envs]`` tensor). Unset parameters take their default.
        device: Device of every tensor the environment returns.

    Raises:
        ValueError: ``num_envs`` or ``horizon`` exceed :attr:`max_num_envs` /
            :attr:`max_horizon`, or the config names an unknown parameter or
            an out-of-bounds value.
    """

    #: Largest horizon the environment supports (``None``: no limit).
    max_horizon: ClassVar[int | None] = None
    #: Largest number of sub-environments supported (``None``: no limit).
    max_num_envs: ClassVar[int | None] = None
    #: Parameters read from ``env_config``, with defaults and valid bounds.
    params: ClassVar[dict[str, Param]] = {}

    observation_spec: Spec
    action_spec: Spec

    def __init__(
        self,
        num_envs: int,
        horizon: int | None = None,
        /,
        *,
        config: Mapping[str, Any] | None = None,
        device: Device = "cpu",
    ) -> None:
        name = type(self).__name__
        if num_envs < 1:
            raise ValueError(f"{name}: num_envs must be >= 1, got {num_envs}.")
        if self.max_num_envs is not None and num_envs > self.max_num_envs:
            raise ValueError(
                f"{name}: num_envs={num_envs} exceeds max_num_envs={self.max_num_envs}."
            )
        if horizon is not None and self.max_horizon is not None and horizon > self.max_horizon:
            raise ValueError(f"{name}: horizon={horizon} exceeds max_horizon={self.max_horizon}.")
        self.num_envs = num_envs
        self.horizon = horizon
        self.device = torch.device(device)
        self.base_config: dict[str, Any] = self.validate_config(config)
        self.config: dict[str, Any] = dict(self.base_config)
        self._p: dict[str, torch.Tensor] = {}
        self._apply_config(None)

    @classmethod
    def validate_config(cls, config: Mapping[str, Any] | None) -> dict[str, Any]:
        """Check names and bounds of ``config`` against :attr:`params`.

        Returns:
            A plain ``dict`` copy of ``config``.

        Raises:
            ValueError: naming the first unknown or out-of-bounds parameter.
        """
        config = dict(config or {})
        for key, value in config.items():
            if key not in cls.params:
                known = ", ".join(sorted(cls.params)) or "none"
                raise ValueError(
                    f"{cls.__name__} has no parameter '{key}' (env_config key). "
                    f"Known parameters: {known}."
                )
            cls.params[key].validate(key, value, owner=cls.__name__)
        return config

    def _apply_config(self, config: Mapping[str, Any] | None) -> None:
        self.config = {**self.base_config, **self.validate_config(config)}
        self._p = {}
        for key, spec in self.params.items():
            value = self.config.get(key, spec.default)
            t = torch.as_tensor(value, dtype=torch.float32, device=self.device)
            if t.ndim == 0:
                t = t.expand(self.num_envs)
            elif t.shape != (self.num_envs,):
                raise ValueError(
                    f"{type(self).__name__}: env_config['{key}'] must be a number or a "
                    f"[num_envs]={self.num_envs} tensor, got shape {tuple(t.shape)}."
                )
            self._p[key] = t

    def param(self, name: str) -> torch.Tensor:
        """The current value of parameter ``name`` as a ``[num_envs]`` tensor."""
        return self._p[name]

    def reset(self, *, config: Mapping[str, Any] | None = None) -> torch.Tensor:
        """Reset every sub-environment, applying ``config`` on top of the
        constructor's config. Returns the initial observation."""
        raise NotImplementedError

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Advance every sub-environment one step.

        Args:
            action: ``[num_envs, *action_spec.shape]``.

        Returns:
            ``(obs, reward)`` or ``(obs, reward, terminated)``:
            ``[num_envs, *observation_spec.shape]``, ``[num_envs]`` and an
            optional ``[num_envs]`` bool tensor (see the module docstring).
        """
        raise NotImplementedError


class EnvFactory(Protocol):
    """Anything that builds an :class:`Env` (usually the class itself)."""

    def __call__(
        self,
        num_envs: int,
        horizon: int | None = None,
        /,
        *,
        config: Mapping[str, Any] | None = None,
        device: Device = "cpu",
    ) -> Env: ...


class _DummyEnv(Env):
    """A position on a line; the reward is minus its distance to the origin."""

    params = {"bounds": Param(100.0, 0.0, None, "half-width of the initial position range")}

    def __init__(
        self,
        num_envs: int,
        horizon: int | None = None,
        /,
        *,
        config: Mapping[str, Any] | None = None,
        device: Device = "cpu",
    ) -> None:
        super().__init__(num_envs, horizon, config=config, device=device)
        self.observation_spec = UnboundedSpec(1)
        self.state = torch.zeros(num_envs, 1, device=self.device)

    def reset(self, *, config: Mapping[str, Any] | None = None) -> torch.Tensor:
        self._apply_config(config)
        bounds = self.param("bounds").unsqueeze(-1)
        self.state = (torch.rand(self.num_envs, 1, device=self.device) * 2 - 1) * bounds
        return self.state.clone()


class DiscreteDummyEnv(_DummyEnv):
    """Dummy env with two actions: move the state one unit left or right."""

    def __init__(
        self,
        num_envs: int,
        horizon: int | None = None,
        /,
        *,
        config: Mapping[str, Any] | None = None,
        device: Device = "cpu",
    ) -> None:
        super().__init__(num_envs, horizon, config=config, device=device)
        self.action_spec = DiscreteSpec(2)

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.state = self.state + (2 * action.to(self.state.dtype) - 1)
        return self.state.clone(), -self.state.abs().squeeze(-1)


class ContinuousDummyEnv(_DummyEnv):
    """Dummy env with one unbounded continuous action added to the state."""

    def __init__(
        self,
        num_envs: int,
        horizon: int | None = None,
        /,
        *,
        config: Mapping[str, Any] | None = None,
        device: Device = "cpu",
    ) -> None:
        super().__init__(num_envs, horizon, config=config, device=device)
        self.action_spec = UnboundedSpec(1)

    def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.state = self.state + action
        return self.state.clone(), -self.state.abs().squeeze(-1)
