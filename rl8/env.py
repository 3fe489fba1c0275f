"""The batched environment protocol and two dummy environments.

An rl8 environment holds ``num_envs`` independent sub-environments and
advances all of them at once with tensor ops. The algorithm owns its
construction::

    env = env_cls(num_envs, horizon, config=env_config, device=device)
    obs = env.reset(config=env_config)        # [num_envs, *observation_spec.shape]
    obs, reward = env.step(action)            # a continuing task, reward [num_envs]
    obs, reward, terminated = env.step(action)  # + terminal states, [num_envs] bool
    step = env.step(action)                   # episodes: an rl8.env.Step (below)

An environment with episodes resets finished sub-environments itself, inside
the batch: ``obs`` is then the new episode's first observation. It reports
episode ends with a :class:`Step`, a named tuple (plain tuples of two or three
tensors keep working)::

    return Step(obs, reward, terminated, truncated, final_obs=final_obs)

* ``terminated`` ([num_envs] bool): the episode ended in a terminal state (a
  pole that fell). Nothing follows it: PPO stops bootstrapping there, so a
  failure costs all future reward instead of one step's.
* ``truncated`` ([num_envs] bool): the episode was cut (a time limit). The
  future still had value: PPO bootstraps it from the value of ``final_obs``,
  the observation the episode ended on, instead of from the reset
  observation in ``obs``.
* ``final_obs`` ([num_envs, *obs_shape]): the observation each finished
  sub-environment ended on (rows of unfinished ones are ignored). Needed with
  ``truncated``.
* ``stats`` (name -> [num_envs] tensor): extra per-step values to log; each is
  averaged over the horizon's steps and sub-environments on the device and
  logged as ``env/<name>``.

An environment that reports ``terminated`` or ``truncated`` has episodes: the
algorithm then sums each sub-environment's rewards per episode and logs
``episodes/return_mean``, ``episodes/length_mean`` and ``episodes/count`` over
the last 100 finished episodes (SB3's ``ep_rew_mean`` and ``ep_len_mean``).

The algorithm also resets the whole batch every ``horizons_per_env_reset``
horizons (never when that is ``-1``); episodes in progress are then dropped
from the statistics. A minimal environment with a time limit::

    class Walk(Env):  # walk right on a line; an episode lasts at most 100 steps

        def __init__(self, num_envs, horizon=None, /, *, config=None, device="cpu"):
            super().__init__(num_envs, horizon, config=config, device=device)
            self.observation_spec = UnboundedSpec(1)
            self.action_spec = DiscreteSpec(2)

        def reset(self, *, config=None):
            self.x = torch.zeros(self.num_envs, 1, device=self.device)
            self.t = torch.zeros(self.num_envs, dtype=torch.int64, device=self.device)
            return self.x.clone()

        def step(self, action):
            self.x = self.x + (2 * action - 1)
            self.t += 1
            truncated = self.t >= 100
            final_obs = self.x.clone()
            self.x = torch.where(truncated.unsqueeze(-1), 0.0, self.x)
            self.t = torch.where(truncated, 0, self.t)
            reward = action.reshape(-1).float()
            return Step(self.x.clone(), reward, torch.zeros_like(truncated), truncated,
                        final_obs=final_obs)

Physical parameters come from ``env_config``. An environment declares them in
:attr:`Env.params` (name -> :class:`~rl8.specs.Param` with default and
bounds); each value may be a number or a per-sub-environment tensor of shape
``[num_envs]``. Unknown names and out-of-bound values raise ``ValueError``
naming the parameter, at construction and at every reset.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Protocol

import torch

from .specs import DiscreteSpec, Param, Spec, UnboundedSpec

__all__ = [
    "ContinuousDummyEnv",
    "DiscreteDummyEnv",
    "Env",
    "EnvFactory",
    "EnvProtocolError",
    "Step",
    "as_step",
    "check_reset_output",
    "check_specs",
    "check_step_output",
    "close_env",
    "env_class",
    "env_hyperparameters",
    "make_env",
]

#: Where the differences to rl8 1.0.0's environment protocol are described.
MIGRATION_DOC = "docs/migration.md, section 'Environments'"

Device = str | torch.device


class Step(NamedTuple):
    """What :meth:`Env.step` returns for an environment with episodes (see
    the module docstring). Shapes: ``[num_envs]`` (``reward`` may be
    ``[num_envs, 1]``), observations ``[num_envs, *observation_spec.shape]``.
    """

    #: Observations after the step; the reset observation where an episode ended.
    obs: torch.Tensor
    #: Reward of the step.
    reward: torch.Tensor
    #: Bool, the episode ended in a terminal state (no bootstrapping). ``None``: never.
    terminated: torch.Tensor | None = None
    #: Bool, the episode was cut, e.g. by a time limit (bootstrapped from
    #: ``final_obs``). ``None``: never.
    truncated: torch.Tensor | None = None
    #: The observation each finished episode ended on (needed with ``truncated``).
    final_obs: torch.Tensor | None = None
    #: Extra per-step values, name -> ``[num_envs]``, logged as ``env/<name>`` means.
    stats: Mapping[str, torch.Tensor] | None = None


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
    #: PPO hyperparameters tuned for this environment (RL-zoo style): any of
    #: :data:`rl8.algorithms.config.ENV_TUNABLE_FIELDS` and ``lr``. A trainer
    #: whose caller leaves such a field unset (``None``) uses the value here
    #: instead of the library's default. Default: none.
    hyperparameters: ClassVar[Mapping[str, Any]] = {}

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

    def step(self, action: torch.Tensor) -> Step | tuple[torch.Tensor, ...]:
        """Advance every sub-environment one step.

        Args:
            action: ``[num_envs, *action_spec.shape]``.

        Returns:
            A :class:`Step`, or the short forms ``(obs, reward)`` and
            ``(obs, reward, terminated)`` (see the module docstring).
        """
        raise NotImplementedError

    def close(self) -> None:
        """Release what the environment holds (worker processes, files); the
        trainer's :meth:`~rl8.trainers.GenericTrainerBase.close` and the app
        call it at the end. Default: nothing."""


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


# -- protocol checks -------------------------------------------------------------
# The algorithms call make_env() once at construction and check the outputs of
# reset() and step() during their first collect() only, so the training loop
# pays nothing for them afterwards.


class EnvProtocolError(TypeError, ValueError):
    """An environment does not follow rl8's protocol (see :mod:`rl8.env`);
    usually an environment written for rl8 1.0.0. The message says what to
    change."""


def _name(env_or_cls: Any) -> str:
    cls = env_or_cls if isinstance(env_or_cls, type) else type(env_or_cls)
    return getattr(cls, "__qualname__", repr(env_or_cls))


def env_class(env_cls: Any) -> Any:
    """The callable behind an environment factory: ``env_cls`` itself, or the
    class a (nested) ``functools.partial`` wraps."""
    while isinstance(env_cls, functools.partial):
        env_cls = env_cls.func
    return env_cls


def env_hyperparameters(env_cls: Any) -> Mapping[str, Any]:
    """The :attr:`Env.hyperparameters` of an environment factory (a class, or a
    ``functools.partial`` of one); empty for factories that carry none."""
    tuned = getattr(env_class(env_cls), "hyperparameters", None)
    return tuned if isinstance(tuned, Mapping) else {}


def _accepts_config(env_cls: Any) -> bool:
    try:
        params = inspect.signature(env_cls).parameters.values()
    except (TypeError, ValueError):
        return True  # cannot tell
    return any(p.name == "config" or p.kind is p.VAR_KEYWORD for p in params)


def _torchrl_spec_hint(spec: Any) -> str:
    kind = type(spec).__name__
    shape = tuple(int(d) for d in getattr(spec, "shape", ()))
    dims = ", ".join(str(d) for d in shape)
    if kind in ("Categorical", "DiscreteTensorSpec", "OneHot", "OneHotDiscreteTensorSpec"):
        n = getattr(getattr(spec, "space", None), "n", "n")
        return f"DiscreteSpec({n}, shape={shape or (1,)})"
    if kind in ("Bounded", "BoundedTensorSpec"):
        return f"BoundedSpec({dims}, low=..., high=...)"
    if kind in ("Unbounded", "UnboundedContinuousTensorSpec", "UnboundedContinuous"):
        return f"UnboundedSpec({dims})"
    return (
        "one of UnboundedSpec, BoundedSpec, DiscreteSpec (or a Spec subclass with a custom model)"
    )


def check_specs(env: Any) -> None:
    """Check that the env has an observation and an action spec, and that
    they are not torchrl specs (the rl8 1.0.0 form).

    Raises:
        EnvProtocolError: Naming the spec and its rl8 replacement.
    """
    for attr in ("observation_spec", "action_spec"):
        spec = getattr(env, attr, None)
        if spec is None:
            raise EnvProtocolError(f"{_name(env)} has no {attr}; set it in __init__.")
        if type(spec).__module__.split(".")[0] == "torchrl":
            raise EnvProtocolError(
                f"{_name(env)}.{attr} is a torchrl spec ({type(spec).__name__}), as in rl8 "
                f"1.0.0. rl8 uses its own specs: replace it with "
                f"rl8.specs.{_torchrl_spec_hint(spec)}. See {MIGRATION_DOC}."
            )


def make_env(
    env_cls: EnvFactory,
    num_envs: int,
    horizon: int | None,
    *,
    config: Mapping[str, Any] | None,
    device: Device,
) -> Env:
    """Build ``env_cls(num_envs, horizon, config=config, device=device)`` and
    check its specs.

    Raises:
        EnvProtocolError: The factory does not accept ``config=`` or the
            specs are torchrl specs (both rl8 1.0.0 forms); the message says
            what to change.
    """
    try:
        env = env_cls(num_envs, horizon, config=config, device=device)
    except TypeError as e:
        if _accepts_config(env_cls):
            raise
        raise EnvProtocolError(
            f"{_name(env_cls)} cannot be built as env_cls(num_envs, horizon, config=..., "
            f"device=...): its constructor takes no config keyword (the rl8 1.0.0 form "
            f"env_cls(num_envs, horizon, device=...)). Add it: "
            f"def __init__(self, num_envs, horizon=None, /, *, config=None, device='cpu') "
            f"and call super().__init__(num_envs, horizon, config=config, device=device). "
            f"See {MIGRATION_DOC}."
        ) from e
    check_specs(env)
    return env


def check_reset_output(env: Env, obs: Any) -> None:
    """Check what ``env.reset()`` returned: one ``[num_envs, *obs_shape]`` tensor.

    Raises:
        EnvProtocolError: Anything else (the message says what to change).
    """
    if not isinstance(obs, torch.Tensor):
        raise EnvProtocolError(
            f"{_name(env)}.reset() returned a {type(obs).__name__}; it must return the "
            f"observation tensor [num_envs, *observation_spec.shape] (rl8 1.0.0 allowed a "
            f"TensorDict). See {MIGRATION_DOC}."
        )
    _check_obs(env, obs, f"{_name(env)}.reset() observation")


def check_step_output(env: Env, out: Any) -> None:
    """Check what ``env.step()`` returned: a :class:`Step`, ``(obs, reward)``
    or ``(obs, reward, terminated)``, with tensors of the right shapes.

    Raises:
        EnvProtocolError: Anything else, e.g. rl8 1.0.0's TensorDict with
            ``"obs"`` and ``"rewards"`` (the message says what to change).
    """
    name = f"{_name(env)}.step()"
    forms = "a rl8.env.Step, (obs, reward) or (obs, reward, terminated) tensors"
    if not isinstance(out, tuple | list):
        if isinstance(out, Mapping) or hasattr(out, "batch_size"):
            keys = ", ".join(repr(k) for k in list(out.keys())[:4])
            raise EnvProtocolError(
                f"{name} returned a {type(out).__name__} ({keys}), the rl8 1.0.0 form. rl8 "
                f"environments return a tuple of tensors: replace "
                f'`return TensorDict({{"obs": obs, "rewards": rewards}}, ...)` with '
                f"`return obs, rewards` (rewards [num_envs] or [num_envs, 1]), or "
                f"`return rl8.env.Step(obs, rewards, terminated, truncated, final_obs=...)` "
                f"for an environment with episodes. See {MIGRATION_DOC}."
            )
        raise EnvProtocolError(f"{name} returned a {type(out).__name__}; it must return {forms}.")
    if not isinstance(out, Step):
        if len(out) not in (2, 3) or not all(isinstance(x, torch.Tensor) for x in out):
            kinds = ", ".join(type(x).__name__ for x in out)
            raise EnvProtocolError(
                f"{name} returned ({kinds}); it must return {forms} (a gymnasium-style "
                f"5-tuple needs rl8.env.Step(obs, reward, terminated, truncated, "
                f"final_obs=...))."
            )
        out = Step(*out)
    for field in ("obs", "reward"):
        if not isinstance(getattr(out, field), torch.Tensor):
            raise EnvProtocolError(f"{name}: Step.{field} must be a tensor.")
    _check_obs(env, out.obs, f"{name} observation")
    n = getattr(env, "num_envs", out.obs.shape[0])
    flags = [("reward", out.reward), ("terminated", out.terminated), ("truncated", out.truncated)]
    flags += [(f"stats[{k!r}]", v) for k, v in (out.stats or {}).items()]
    for what, x in flags:
        if x is None:
            continue
        if not isinstance(x, torch.Tensor):
            raise EnvProtocolError(f"{name} {what} is a {type(x).__name__}; expected a tensor.")
        if x.numel() != n or x.ndim > 2 or (x.ndim == 2 and x.shape[1] != 1):
            raise EnvProtocolError(
                f"{name} {what} has shape {tuple(x.shape)}; expected [num_envs] or "
                f"[num_envs, 1] with num_envs={n}."
            )
        if what in ("terminated", "truncated") and x.dtype != torch.bool:
            raise EnvProtocolError(f"{name} {what} must be a bool tensor, got {x.dtype}.")
    if out.truncated is not None:
        if out.final_obs is None:
            raise EnvProtocolError(
                f"{name} reports truncated episodes but no final_obs: return "
                f"Step(..., truncated=truncated, final_obs=obs_before_reset), so the value "
                f"of a cut episode is bootstrapped from where it ended."
            )
        if not isinstance(out.final_obs, torch.Tensor) or out.final_obs.shape != out.obs.shape:
            shape = tuple(getattr(out.final_obs, "shape", ()))
            raise EnvProtocolError(
                f"{name} final_obs has shape {shape}; expected obs's {tuple(out.obs.shape)}."
            )


def close_env(env: Any) -> None:
    """``env.close()`` when the environment has one (the protocol does not
    require it)."""
    close = getattr(env, "close", None)
    if callable(close):
        close()


def as_step(out: Step | tuple[torch.Tensor, ...]) -> Step:
    """Any form :meth:`Env.step` may return, as a :class:`Step`."""
    if isinstance(out, Step):
        return out
    return Step(out[0], out[1], out[2] if len(out) > 2 else None)


def _check_obs(env: Any, obs: torch.Tensor, what: str) -> None:
    check = getattr(env.observation_spec, "check", None)
    if check is not None:
        try:
            check(obs, what)
        except ValueError as e:
            raise EnvProtocolError(str(e)) from None


if not TYPE_CHECKING:  # (kept from type checkers, which would accept any name)

    def __getattr__(name: str) -> Any:
        from ._removed import removed

        raise removed(__name__, name)
