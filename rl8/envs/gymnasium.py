"""Gymnasium vector environments as rl8 environments.

:class:`Gymnasium` runs ``num_envs`` copies of a registered gymnasium
environment (``gymnasium.make_vec(id, ...)``), or a vector environment of
your own, behind rl8's batched protocol (:mod:`rl8.env`)::

    from functools import partial
    from rl8 import Trainer
    from rl8.envs import Gymnasium

    trainer = Trainer(partial(Gymnasium, id="Pendulum-v1"), num_envs=16, tracker=None)

or ``python -m rl8.train env=gymnasium env.id=Pendulum-v1``. Needs
gymnasium >= 1.1 (``pip install rl8[gymnasium]``); ``import rl8.envs`` does
not import it. See ``docs/gymnasium.md``.

Episodes. rl8 wants finished sub-environments reset *in the same step*
(``obs`` is the new episode's first observation, ``final_obs`` the one the
finished episode ended on). That is gymnasium's ``AutoresetMode.SAME_STEP``,
which :class:`Gymnasium` asks ``make_vec`` for. A vector environment of your
own may use ``SAME_STEP`` or ``DISABLED`` (the adapter then resets finished
sub-environments itself, with ``reset(options={"reset_mask": done})``).
Gymnasium's default, ``NEXT_STEP``, is refused: there the step after an
episode end ignores its action and returns the reset observation with reward
0, a transition that never happened, which PPO would learn from.

Spaces. Observations: ``Box`` (any shape; cast to float32), ``Discrete``
(one-hot float32) and ``MultiBinary`` (0/1 float32). Actions: ``Discrete(n)``
-> ``DiscreteSpec(n)``; ``MultiDiscrete`` with one common size ``n`` ->
``DiscreteSpec(n, shape=nvec.shape)``; ``MultiBinary`` -> ``DiscreteSpec(2,
shape)``; float ``Box`` with one finite ``low`` and ``high`` for every
element -> ``BoundedSpec``, with finite bounds that differ between elements
-> ``BoundedSpec(low=-1, high=1)`` rescaled linearly into each element's
bounds (as ``gymnasium.wrappers.RescaleAction`` does), with an infinite bound
-> ``UnboundedSpec``. Anything else raises ``ValueError``.

Rendering. Built with ``render_mode="rgb_array"`` (on the command line
``+env.render_mode=rgb_array``), :meth:`Gymnasium.render` returns a frame of
one sub-environment (see :mod:`rl8.render`). Gymnasium's classic-control
environments draw with pygame (``pip install "gymnasium[classic-control]"``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch

try:
    import gymnasium
    from gymnasium import spaces
    from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv
except ImportError as e:  # pragma: no cover - depends on the installation
    raise ImportError(
        "rl8.envs.Gymnasium needs gymnasium >= 1.1 (vector autoreset modes): "
        "pip install 'rl8[gymnasium]' (or pip install 'gymnasium>=1.1')."
    ) from e

from ..env import Device, Env, Step
from ..specs import BoundedSpec, DiscreteSpec, Spec, UnboundedSpec

__all__ = ["Gymnasium"]

#: What ``make_vec`` is asked for in its ``"sync"`` and ``"async"`` modes.
_VECTOR_KWARGS: dict[str, Any] = {"autoreset_mode": AutoresetMode.SAME_STEP}

_SUPPORTED_OBS = "Box (any shape), Discrete (one-hot) and MultiBinary"
_SUPPORTED_ACTIONS = (
    "Discrete, MultiDiscrete with one size for every element, MultiBinary and float Box"
)


class Gymnasium(Env):
    """``num_envs`` gymnasium environments stepped as one rl8 environment.

    Exactly one of ``id`` and ``env_fn`` says what to run.

    Observation spec: ``UnboundedSpec(*shape)`` float32 (see the module
    docstring for the spaces supported). Action spec: ``DiscreteSpec`` for
    ``Discrete`` / ``MultiDiscrete`` / ``MultiBinary`` actions (``[num_envs,
    *shape]`` int64; ``Discrete`` actions are ``[num_envs, 1]``), ``BoundedSpec``
    or ``UnboundedSpec`` for ``Box`` actions. Actions are converted to the
    dtype and shape the action space wants, not clipped: keeping them in
    bounds is the distribution's job (rl8's default for a ``BoundedSpec`` is a
    squashed Gaussian) or the environment's.

    :meth:`step` returns an :class:`rl8.env.Step` with ``obs`` and
    ``final_obs`` (``[num_envs, *shape]`` float32), ``reward`` (``[num_envs]``
    float32) and ``terminated`` / ``truncated`` (``[num_envs]`` bool), all on
    ``device``. Where a sub-environment's episode ended, ``obs`` is already
    the next episode's first observation and ``final_obs`` the last one of the
    finished episode; elsewhere ``final_obs`` equals ``obs`` (it is the same
    tensor when no episode ended).

    The first :meth:`reset` seeds the vector environment with a number drawn
    from torch's global generator, so a run seeded with ``torch.manual_seed``
    is reproducible; later resets continue the sub-environments' generators.

    Args:
        num_envs: Number of sub-environments.
        horizon: Informational (gymnasium environments have no limit).
        config: rl8 environment parameters: gymnasium environments have none,
            so it must be empty (pass the environment's own arguments with
            ``kwargs``).
        device: Device of every returned tensor; actions may be on any device.
        id: A registered gymnasium id (``"CartPole-v1"``, ``"Pendulum-v1"``,
            or ``"module:Name-v0"`` to import ``module`` first), built with
            ``gymnasium.make_vec``.
        vectorization_mode: With ``id``: ``"sync"`` (default, one process,
            sub-environments stepped in turn), ``"async"`` (one process per
            sub-environment, stepped in parallel; pays off when a
            sub-environment's step costs well over the inter-process round
            trip, tens to hundreds of microseconds, and there are enough
            cores) or ``"vector_entry_point"`` (the id's own vectorized
            implementation, accepted only if it can autoreset in the same
            step, see the module docstring).
        kwargs: With ``id``: keyword arguments of ``gymnasium.make`` and of
            the environment's constructor (``max_episode_steps``, ``g`` for
            Pendulum, ...). Default: none.
        env_fn: Instead of ``id``: a function of ``num_envs`` returning a
            ``gymnasium.vector.VectorEnv`` with that many sub-environments
            whose ``metadata["autoreset_mode"]`` is ``SAME_STEP`` or
            ``DISABLED``. :meth:`wrap` makes one from an existing vector
            environment. The adapter owns the result: :meth:`close` closes it.
        render_mode: With ``id``: gymnasium's render mode, passed to
            ``make_vec``; ``"rgb_array"`` lets :meth:`render` draw frames.
            Default ``None``: no rendering (and no rendering cost). With
            ``env_fn``, build the vector environment with the render mode.

    Raises:
        ValueError: Neither or both of ``id`` and ``env_fn``; ``kwargs`` or
            ``render_mode`` with ``env_fn``; an unknown id or invalid arguments; a vector
            environment with the wrong number of sub-environments or the
            ``NEXT_STEP`` autoreset mode; an unsupported space; a non-empty
            ``config``. The message names the fix.

    Attributes:
        vec_env: The gymnasium vector environment.
        autoreset_mode: Its ``gymnasium.vector.AutoresetMode``.
    """

    def __init__(
        self,
        num_envs: int,
        horizon: int | None = None,
        /,
        *,
        config: Mapping[str, Any] | None = None,
        device: Device = "cpu",
        id: str | None = None,
        vectorization_mode: str = "sync",
        kwargs: Mapping[str, Any] | None = None,
        env_fn: Callable[[int], VectorEnv] | None = None,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(num_envs, horizon, config=config, device=device)
        if (id is None) == (env_fn is None):
            raise ValueError(
                "Gymnasium needs exactly one of id= (a registered gymnasium id, e.g. "
                "id='CartPole-v1'; on the command line env.id=CartPole-v1) and env_fn= (a "
                f"function of num_envs returning a gymnasium VectorEnv); got "
                f"id={id!r}, env_fn={env_fn!r}."
            )
        self.id = id
        if id is not None:
            self._where = f"Gymnasium(id={id!r})"
            make_kwargs = dict(kwargs or {})
            if render_mode is not None:
                other = make_kwargs.setdefault("render_mode", render_mode)
                if other != render_mode:
                    raise ValueError(
                        f"{self._where}: render_mode={render_mode!r} and "
                        f"kwargs['render_mode']={other!r} differ; set it once."
                    )
            vec_env = self._make_vec(id, vectorization_mode, make_kwargs)
        else:
            assert env_fn is not None
            self._where = f"Gymnasium(env_fn={getattr(env_fn, '__name__', env_fn)!r})"
            if kwargs:
                raise ValueError(
                    f"{self._where}: kwargs={dict(kwargs)!r} is only used with id=; with "
                    "env_fn=, pass the arguments to your environments inside env_fn."
                )
            if render_mode is not None:
                raise ValueError(
                    f"{self._where}: render_mode={render_mode!r} is only used with id=; with "
                    "env_fn=, build the vector environment with it (e.g. "
                    "gymnasium.make_vec(..., render_mode='rgb_array'))."
                )
            vec_env = env_fn(num_envs)
            if not isinstance(vec_env, VectorEnv):
                raise ValueError(
                    f"{self._where}: env_fn({num_envs}) returned a {type(vec_env).__name__}; "
                    "it must return a gymnasium.vector.VectorEnv (e.g. from "
                    "gymnasium.make_vec or gymnasium.vector.SyncVectorEnv)."
                )
        self.vec_env: VectorEnv = vec_env
        try:
            self._setup()
        except BaseException:
            vec_env.close()
            raise
        self._seeded = False

    def _make_vec(self, id: str, mode: str, kwargs: dict[str, Any]) -> VectorEnv:
        vector_kwargs = _VECTOR_KWARGS if mode in ("sync", "async") else None
        try:
            return gymnasium.make_vec(
                id,
                num_envs=self.num_envs,
                vectorization_mode=mode,
                vector_kwargs=vector_kwargs,
                **kwargs,
            )
        except gymnasium.error.UnregisteredEnv as e:
            raise ValueError(
                f"{self._where}: {e} Check the id (gymnasium.pprint_registry() lists "
                "them; 'module:Name-v0' imports module first)."
            ) from e
        except (gymnasium.error.Error, TypeError, ValueError) as e:
            raise ValueError(
                f"{self._where} (vectorization_mode={mode!r}, kwargs={kwargs!r}) cannot be "
                f"built: {e}"
            ) from e

    def _setup(self) -> None:
        vec_env = self.vec_env
        if vec_env.num_envs != self.num_envs:
            raise ValueError(
                f"{self._where}: the vector environment has {vec_env.num_envs} "
                f"sub-environments, but num_envs={self.num_envs} (trainer.num_envs). Make "
                "them equal."
            )
        self.autoreset_mode = self._check_autoreset_mode(vec_env.metadata.get("autoreset_mode"))

        # Observations.
        space = vec_env.single_observation_space
        self._obs_n = 0  # > 0: Discrete observations, one-hot over this many values
        self._obs_start = 0
        if isinstance(space, spaces.Box | spaces.MultiBinary):
            obs_shape = tuple(int(d) for d in space.shape) or (1,)
        elif isinstance(space, spaces.Discrete):
            self._obs_n, self._obs_start = int(space.n), int(space.start)
            obs_shape = (self._obs_n,)
        else:
            raise ValueError(
                f"{self._where}: observation space {space} is not supported; supported: "
                f"{_SUPPORTED_OBS}. Flatten a Dict or Tuple observation with "
                "gymnasium.wrappers.FlattenObservation inside env_fn=."
            )
        self._obs_shape = obs_shape
        self.observation_spec: Spec = UnboundedSpec(*obs_shape)

        # Actions: the policy's are converted by _action_array.
        space = vec_env.single_action_space
        self._act_dtype = np.dtype(space.dtype) if space.dtype is not None else None
        self._act_shape: tuple[int, ...] = ()
        self._act_start: Any = None  # added to the policy's 0-based discrete actions
        self._act_scale: tuple[np.ndarray, np.ndarray] | None = None  # (low, (high - low) / 2)
        if isinstance(space, spaces.Discrete):
            self.action_spec = self._discrete_spec(int(space.n), (1,), space)
            if int(space.start):
                self._act_start = space.start
        elif isinstance(space, spaces.MultiDiscrete):
            self._act_shape = tuple(int(d) for d in space.shape)
            sizes = np.unique(space.nvec)
            if len(sizes) != 1:
                raise ValueError(
                    f"{self._where}: action space {space} has sub-actions of different sizes "
                    f"{sizes.tolist()}; rl8's DiscreteSpec needs one size for all. Wrap the "
                    "environment to take equal sizes, or a single Discrete action "
                    f"(supported: {_SUPPORTED_ACTIONS})."
                )
            self.action_spec = self._discrete_spec(int(sizes[0]), self._act_shape, space)
            if np.any(space.start):
                self._act_start = space.start
        elif isinstance(space, spaces.MultiBinary):
            self._act_shape = tuple(int(d) for d in space.shape)
            self.action_spec = DiscreteSpec(2, shape=self._act_shape)
        elif isinstance(space, spaces.Box) and np.issubdtype(space.dtype, np.floating):
            self._act_shape = tuple(int(d) for d in space.shape)
            self.action_spec = self._box_spec(space)
        else:
            raise ValueError(
                f"{self._where}: action space {space} is not supported; supported: "
                f"{_SUPPORTED_ACTIONS}."
            )

    def _check_autoreset_mode(self, mode: Any) -> AutoresetMode:
        try:
            mode = AutoresetMode(mode) if mode is not None else AutoresetMode.NEXT_STEP
        except ValueError:
            raise ValueError(
                f"{self._where}: metadata['autoreset_mode']={mode!r} is not a "
                "gymnasium.vector.AutoresetMode."
            ) from None
        if mode is AutoresetMode.NEXT_STEP:
            fix = (
                "use vectorization_mode='sync' or 'async'"
                if self.id is not None
                else "build the vector environment with vector_kwargs={'autoreset_mode': "
                "gymnasium.vector.AutoresetMode.SAME_STEP} (make_vec) or "
                "autoreset_mode=AutoresetMode.SAME_STEP (SyncVectorEnv / AsyncVectorEnv), "
                "or DISABLED"
            )
            raise ValueError(
                f"{self._where}: {type(self.vec_env.unwrapped).__name__} autoresets in "
                "gymnasium's NEXT_STEP mode (metadata['autoreset_mode'], NEXT_STEP when "
                "missing), where the step after an episode end ignores its action and returns "
                "the reset observation with reward 0. rl8 would learn from that transition, "
                f"which never happened; {fix}."
            )
        return mode

    def _discrete_spec(self, n: int, shape: tuple[int, ...], space: Any) -> DiscreteSpec:
        if n < 2:
            raise ValueError(
                f"{self._where}: action space {space} offers {n} choice(s); rl8's DiscreteSpec "
                "needs 2 or more."
            )
        return DiscreteSpec(n, shape=shape)

    def _box_spec(self, space: spaces.Box) -> Spec:
        low, high = np.asarray(space.low, np.float64), np.asarray(space.high, np.float64)
        shape = self._act_shape or (1,)
        if not (np.isfinite(low).all() and np.isfinite(high).all()):
            return UnboundedSpec(*shape)
        if (low == low.flat[0]).all() and (high == high.flat[0]).all():
            return BoundedSpec(*shape, low=float(low.flat[0]), high=float(high.flat[0]))
        # Bounds that differ per element: the policy acts in [-1, 1], rescaled linearly
        # into [low, high] (as gymnasium.wrappers.RescaleAction does).
        self._act_scale = (low, (high - low) / 2)
        return BoundedSpec(*shape, low=-1.0, high=1.0)

    @classmethod
    def validate_config(cls, config: Mapping[str, Any] | None) -> dict[str, Any]:
        """Check that ``config`` is empty: gymnasium environments have no rl8
        parameters.

        Raises:
            ValueError: Naming the keys and where the environment's own
                arguments go (``kwargs``, on the command line ``env.kwargs``).
        """
        config = dict(config or {})
        if config:
            raise ValueError(
                f"Gymnasium has no rl8 parameters, but env_config sets {sorted(config)}: leave "
                "env.config (and eval.env_config) empty and pass the gymnasium environment's "
                "own arguments as kwargs (on the command line +env.kwargs.NAME=VALUE, e.g. "
                "+env.kwargs.g=9.81); they are fixed for the run."
            )
        return config

    @classmethod
    def wrap(cls, vec_env: VectorEnv, **options: Any) -> functools.partial[Gymnasium]:
        """An environment factory running the existing ``vec_env``.

        Use it where rl8 wants an env class: ``Trainer(Gymnasium.wrap(vec_env),
        num_envs=vec_env.num_envs)``. The factory can be called once (the
        environment it builds owns ``vec_env``), with ``num_envs`` equal to
        ``vec_env.num_envs``; ``vec_env`` must autoreset in the ``SAME_STEP`` or
        ``DISABLED`` mode.

        Args:
            vec_env: A ``gymnasium.vector.VectorEnv``.
            options: More keyword arguments of :class:`Gymnasium` (e.g. ``device``).
        """

        def env_fn(num_envs: int) -> VectorEnv:
            if num_envs != vec_env.num_envs:
                raise ValueError(
                    f"Gymnasium.wrap({vec_env}): num_envs={num_envs}, but the vector "
                    f"environment has {vec_env.num_envs} sub-environments; set num_envs="
                    f"{vec_env.num_envs}."
                )
            return vec_env

        env_fn.__name__ = f"wrap({vec_env})"
        return functools.partial(cls, env_fn=env_fn, **options)

    # -- conversions -------------------------------------------------------------------

    def _obs_array(self, obs: Any) -> np.ndarray:
        """Observations of a batch (any leading size) as a float32 array the env
        does not share."""
        if self._obs_n:
            index = np.asarray(obs, dtype=np.int64).reshape(-1) - self._obs_start
            return np.eye(self._obs_n, dtype=np.float32)[index]
        return _owned(obs, np.float32).reshape(-1, *self._obs_shape)

    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(x)
        return t if self.device.type == "cpu" else t.to(self.device)

    def _action_array(self, action: torch.Tensor) -> np.ndarray:
        t = action.detach().reshape(self.num_envs, *self._act_shape)
        a = (t if t.device.type == "cpu" else t.cpu()).numpy()
        if self._act_start is not None:
            a = a + self._act_start
        elif self._act_scale is not None:
            low, half_range = self._act_scale
            a = low + (a + 1.0) * half_range
        return np.array(a, dtype=self._act_dtype)  # a copy the env may keep

    # -- protocol ------------------------------------------------------------------------

    def reset(self, *, config: Mapping[str, Any] | None = None) -> torch.Tensor:
        """Reset every sub-environment and return ``[num_envs, *shape]``
        float32 observations. ``config`` must be empty."""
        self._apply_config(config)
        seed = None
        if not self._seeded:
            seed = int(torch.randint(2**31 - 1, ()))
            self._seeded = True
        obs, _ = self.vec_env.reset(seed=seed)
        return self._tensor(self._obs_array(obs))

    def step(self, action: torch.Tensor) -> Step:
        """Step every sub-environment with ``action`` (``[num_envs,
        *action_spec.shape]``, on any device); finished sub-environments are
        reset in the same step (see the class docstring)."""
        obs, reward, terminated, truncated, info = self.vec_env.step(self._action_array(action))
        terminated = _owned(terminated, np.bool_)
        truncated = _owned(truncated, np.bool_)
        obs_np = final_np = self._obs_array(obs)
        done = terminated | truncated
        if done.any():
            rows = np.flatnonzero(done)
            if self.autoreset_mode is AutoresetMode.SAME_STEP:
                final = info.get("final_obs")
                if final is None:
                    raise RuntimeError(
                        f"{self._where}: an episode ended, but the SAME_STEP vector "
                        "environment's info has no 'final_obs'."
                    )
                final_np = obs_np.copy()
                final_np[rows] = self._obs_array(np.stack([final[i] for i in rows]))
            else:  # DISABLED: reset the finished sub-environments here
                reset_obs, _ = self.vec_env.reset(options={"reset_mask": done})
                obs_np = obs_np.copy()
                obs_np[rows] = self._obs_array(reset_obs)[rows]
        obs_t = self._tensor(obs_np)
        return Step(
            obs_t,
            self._tensor(_owned(reward, np.float32)),
            self._tensor(terminated),
            self._tensor(truncated),
            final_obs=obs_t if final_np is obs_np else self._tensor(final_np),
        )

    @property
    def render_mode(self) -> str | None:
        """The vector environment's render mode (``"rgb_array"``: :meth:`render`
        works; see :func:`rl8.render.can_render`)."""
        mode = getattr(self.vec_env, "render_mode", None)
        return mode if mode is None else str(mode)

    def render(self, index: int = 0) -> np.ndarray:
        """Sub-environment ``index`` in its current state, the RGB frame
        ``[H, W, 3]`` uint8 its gymnasium environment draws (where an episode
        ended in the last step, the new episode's first state: gymnasium
        resets it inside the step).

        Raises:
            RuntimeError: The environment was not built with
                ``render_mode="rgb_array"`` (the message says how), or not
                reset yet.
            IndexError: ``index`` is not in ``[0, num_envs)``.
        """
        from ..render import check_index

        check_index(self, index)
        if self.render_mode != "rgb_array":
            how = (
                "Gymnasium(..., render_mode='rgb_array'); on the command line "
                "+env.render_mode=rgb_array"
                if self.id is not None
                else "build the vector environment of env_fn with render_mode='rgb_array'"
            )
            raise RuntimeError(
                f"{self._where}: render() needs render_mode='rgb_array', but the vector "
                f"environment has render_mode={self.render_mode!r} ({how})."
            )
        if not self._seeded:
            raise RuntimeError(f"{self._where}: call reset() before render().")
        if isinstance(self.vec_env, SyncVectorEnv):  # draw only the one asked for
            frame = self.vec_env.envs[index].render()
        else:
            frames = self.vec_env.render()
            frame = None if frames is None else frames[index]
        a = np.asarray(frame)
        if a.dtype != np.uint8 or a.ndim != 3 or a.shape[-1] != 3:
            raise RuntimeError(
                f"{self._where}: sub-environment {index} rendered "
                f"{type(frame).__name__} of shape {a.shape} and dtype {a.dtype}; expected an "
                "RGB frame [H, W, 3] uint8."
            )
        return a

    def close(self) -> None:
        """Close the vector environment (ends ``"async"`` worker processes)."""
        self.vec_env.close()

    def __repr__(self) -> str:
        return f"{self._where[:-1]}, num_envs={self.num_envs}, device={str(self.device)!r})"


def _owned(x: Any, dtype: Any) -> np.ndarray:
    """``x`` as an array of ``dtype`` in memory of its own (a vector environment
    may reuse the arrays it returns)."""
    a = np.asarray(x, dtype=dtype)
    return a.copy() if a is x else a
