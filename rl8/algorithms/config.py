"""PPO hyperparameters, declared once.

:class:`AlgorithmConfig` (and :class:`RecurrentAlgorithmConfig`, which adds
truncated BPTT) is the only place a hyperparameter, its default and its
meaning are written. The same declaration is

* the keyword arguments of :class:`~rl8.algorithms.Algorithm` and of the
  trainers (``Trainer(CartPole, gamma=0.95)``),
* the fields of :class:`~rl8.TrainConfig` (a subclass),
* the schema of the ``trainer`` node of ``python -m rl8.train``
  (:func:`trainer_fields`, used by ``rl8.config``).

**``None`` means the default, everywhere.** Passing ``None`` for a field (or
``null`` in a config file or on the command line) gives that field's
default. Features that are off by default (value clipping, dual clip, the KL
stop, schedules) have ``None`` as their default, so there is no second
meaning of ``None``.

**Per-environment defaults.** An environment class may carry PPO
hyperparameters tuned for it (:attr:`rl8.env.Env.hyperparameters`, e.g.
:class:`~rl8.envs.CartPole`'s), as RL-zoo keeps one set per task. They may
set the fields of :data:`ENV_TUNABLE_FIELDS` and ``lr``; a field the caller
leaves unset (``None``) takes the environment's value when the algorithm is
built, else the default written here. What was used is what the algorithm's
``config`` holds (and what trainers log).

Units: env steps are transitions summed over all sub-environments.
:meth:`AlgorithmConfig.validate` raises :class:`HyperparameterError` naming
the field.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from ..errors import HyperparameterError, did_you_mean

if TYPE_CHECKING:
    import torch

    from ..env import EnvFactory
    from .feedforward import Algorithm
    from .recurrent import RecurrentAlgorithm

    Device = str | torch.device
else:  # torch is imported only when a config is built: composing the app's config needs none
    Device = Any

__all__ = [
    "ENV_TUNABLE_FIELDS",
    "AlgorithmConfig",
    "HyperparameterError",  # re-exported from rl8.errors
    "RecurrentAlgorithmConfig",
    "resolve_device",
    "trainer_fields",
]

#: Fields that say *what* is trained, set through other config nodes of the app
#: (``env``, ``model``, ``optimizer``, ``device``) rather than ``trainer``.
COMPONENT_FIELDS = (
    "env_config",
    "model_cls",
    "model_config",
    "optimizer_cls",
    "optimizer_config",
    "device",
)

#: Learning rate used when ``optimizer_config`` has no ``lr`` (and the env sets none).
DEFAULT_LR = 1e-3

#: Fields an environment's :attr:`~rl8.env.Env.hyperparameters` may set (with
#: ``lr``): the sizes and step sizes RL-zoo tunes per task. Their declared
#: default is ``None`` (unset); unset, they take the environment's value, else
#: the library's default (the field's comment).
ENV_TUNABLE_FIELDS = (
    "num_envs",
    "horizon",
    "gamma",
    "gae_lambda",
    "clip_param",
    "entropy_coeff",
    "sgd_minibatch_size",
    "num_sgd_iters",
)

_T = TypeVar("_T")
_C = TypeVar("_C", bound="AlgorithmConfig")


def _env_tunable(default: _T) -> _T:
    """Declare a field of :data:`ENV_TUNABLE_FIELDS`: ``None`` in the signature
    (so that unset can be told from set), ``default`` (the library's) in its
    metadata, filled in by ``__post_init__``."""
    return cast(_T, dataclasses.field(default=None, metadata={"default": default}))


@dataclass(kw_only=True)
class AlgorithmConfig:
    """Feedforward PPO hyperparameters (keyword-only; ``None`` = the default)."""

    #: Environment parameters (name -> value) passed at construction and reset. Default: none.
    env_config: dict[str, Any] | None = None
    #: Model class; default :class:`~rl8.models.MLPModel` (LSTM for recurrent PPO).
    model_cls: Any = None
    #: Keyword arguments of ``model_cls``. Default: none (the model's defaults).
    model_config: dict[str, Any] | None = None
    #: Action distribution class; default from the action spec (categorical / squashed normal).
    distribution_cls: Any = None
    #: Sub-environments stepped together. Default 64 (raise it, with
    #: ``sgd_minibatch_size``, for GPUs and slow environments).
    num_envs: int = _env_tunable(64)
    #: Steps per sub-environment per collect (one trainer step). Default 32.
    horizon: int = _env_tunable(32)
    #: Horizons between full env resets; ``-1`` (default) resets only before the first
    #: (the built-in envs restart finished sub-envs themselves).
    horizons_per_env_reset: int = -1
    #: Optimizer class. Default ``torch.optim.Adam``.
    optimizer_cls: Any = None
    #: Keyword arguments of ``optimizer_cls``; ``lr`` defaults to 1e-3, and an
    #: argument set to ``None`` gets the optimizer's own default.
    optimizer_config: dict[str, Any] | None = None
    #: Discount factor in (0, 1]. Default 0.99.
    gamma: float = _env_tunable(0.99)
    #: GAE lambda in [0, 1]. Default 0.95.
    gae_lambda: float = _env_tunable(0.95)
    #: Normalize advantages over the whole buffer (mean 0, std 1). Default true.
    normalize_advantages: bool = True
    #: Scale rewards by a running std of discounted returns. Default true.
    normalize_rewards: bool = True
    #: PPO policy-ratio clip, > 0. Default 0.2.
    clip_param: float = _env_tunable(0.2)
    #: Value clip: new values stay within this distance of the collected ones
    #: (PPO2 style). Default ``None``: off (as Stable-Baselines3's ``clip_range_vf``).
    vf_clip_param: float | None = None
    #: Dual clip (Ye et al. 2020) for negative advantages, > 1. Default ``None``: off.
    dual_clip_param: float | None = None
    #: Value loss weight, >= 0. Default 0.5.
    vf_coeff: float = 0.5
    #: Entropy bonus weight, >= 0. Default 0.0.
    entropy_coeff: float = _env_tunable(0.0)
    #: Entropy weight schedule ``[[env_steps, coeff], ...]`` (replaces ``entropy_coeff``).
    #: Default ``None``: constant ``entropy_coeff``.
    entropy_coeff_schedule: list[tuple[int, float]] | None = None
    #: ``"step"`` (hold each value) or ``"interp"`` (linear). Default ``"step"``.
    entropy_coeff_schedule_kind: Literal["step", "interp"] = "step"
    #: Transitions per SGD minibatch, capped at the buffer (``num_envs * horizon``):
    #: a value at least the buffer's size means one minibatch. Default 512.
    sgd_minibatch_size: int = _env_tunable(512)
    #: Passes over the buffer per update. Default 10.
    num_sgd_iters: int = _env_tunable(10)
    #: Shuffle transitions between minibatches. Default true.
    shuffle_minibatches: bool = True
    #: One optimizer step per pass (gradients summed over its minibatches)
    #: instead of one per minibatch. Default false.
    accumulate_grads: bool = False
    #: Gradient norm clip, > 0. Default 0.5.
    max_grad_norm: float = 0.5
    #: Stop an update's passes once the approximate KL exceeds 1.5 x this, > 0.
    #: Default ``None``: off.
    target_kl_div: float | None = None
    #: Learning-rate schedule ``[[env_steps, lr], ...]``. Default ``None``: constant lr.
    lr_schedule: list[tuple[int, float]] | None = None
    #: ``"step"`` (hold each value) or ``"interp"`` (linear). Default ``"step"``.
    lr_schedule_kind: Literal["step", "interp"] = "step"
    #: Automatic mixed precision: bfloat16 on CPU, float16 with grad scaling on CUDA.
    #: Default false.
    enable_amp: bool = False
    #: Most transitions pushed through the model at once in an update; larger
    #: minibatches are split with gradients accumulated (same result). Default 4096.
    update_chunk_size: int = 4096
    #: ``"auto"`` (default: CUDA when available, else CPU), ``"cpu"``, ``"cuda"``,
    #: ``"cuda:N"``, ``"mps"``.
    device: Device = "auto"

    def __post_init__(self) -> None:
        unset = []
        for f in dataclasses.fields(self):
            if getattr(self, f.name) is None:
                setattr(self, f.name, _default(f))
                if f.name in ENV_TUNABLE_FIELDS:
                    unset.append(f.name)
        #: The :data:`ENV_TUNABLE_FIELDS` the caller left unset (see :meth:`env_defaults`).
        self.unset_fields: frozenset[str] = frozenset(unset)
        if self.optimizer_cls is None:
            import torch

            self.optimizer_cls = torch.optim.Adam

    @classmethod
    def fields(cls) -> list[str]:
        """Names of all fields."""
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> AlgorithmConfig:
        """Build from keyword arguments.

        Raises:
            TypeError: an unknown name (with the closest known one).
        """
        known = cls.fields()
        for name in kwargs:
            if name not in known:
                raise TypeError(f"{cls.__name__} has no field {name!r}{did_you_mean(name, known)}.")
        return cls(**kwargs)

    def given(self) -> dict[str, Any]:
        """The fields as keyword arguments that rebuild this config: unset
        :data:`ENV_TUNABLE_FIELDS` stay ``None``."""
        return {
            name: None if name in self.unset_fields else getattr(self, name)
            for name in self.fields()
        }

    def env_defaults(self, env_cls: EnvFactory) -> dict[str, Any]:
        """What :meth:`for_env` takes from ``env_cls``'s
        :attr:`~rl8.env.Env.hyperparameters`: the values of the unset
        :data:`ENV_TUNABLE_FIELDS`, and ``lr`` when ``optimizer_config`` has none.

        Raises:
            HyperparameterError: the environment names a field it may not set.
        """
        from ..env import env_class, env_hyperparameters

        tuned = env_hyperparameters(env_cls)
        allowed = (*ENV_TUNABLE_FIELDS, "lr")
        for name in tuned:
            if name not in allowed:
                raise HyperparameterError(
                    f"{getattr(env_class(env_cls), '__name__', 'env')}.hyperparameters[{name!r}]",
                    tuned[name],
                    f"an environment may set {', '.join(allowed)}{did_you_mean(name, allowed)}",
                )
        taken = {k: v for k, v in tuned.items() if k in self.unset_fields}
        if "lr" in tuned and (self.optimizer_config or {}).get("lr") is None:
            taken["lr"] = tuned["lr"]
        return taken

    def for_env(self: _C, env_cls: EnvFactory) -> _C:
        """This config with :meth:`env_defaults` filled in (``self`` when there are none).

        Raises:
            HyperparameterError: the environment names a field it may not set.
        """
        taken = self.env_defaults(env_cls)
        if not taken:
            return self
        values = self.given()
        if "lr" in taken:
            values["optimizer_config"] = {**(self.optimizer_config or {}), "lr": taken.pop("lr")}
        values.update(taken)
        return type(self)(**values)

    def build(self, env_cls: EnvFactory) -> Algorithm:
        """Build and validate the :class:`~rl8.algorithms.Algorithm` of this
        config (the rl8 1.0.0 form of ``Algorithm(env_cls, **fields)``)."""
        from ._compat import build_algorithm

        return build_algorithm(self, env_cls)

    @property
    def minibatch_size(self) -> int:
        """Transitions per SGD minibatch: ``sgd_minibatch_size`` capped at the buffer."""
        return min(self.sgd_minibatch_size, self.num_envs * self.horizon)

    @property
    def optimizer_kwargs(self) -> dict[str, Any]:
        """The optimizer's keyword arguments: ``optimizer_config`` without its
        ``None`` values, with ``lr`` defaulting to 1e-3."""
        given = {k: v for k, v in (self.optimizer_config or {}).items() if v is not None}
        return {"lr": DEFAULT_LR, **given}

    def validate(self) -> AlgorithmConfig:
        """Check every field; returns ``self``.

        Raises:
            HyperparameterError: naming the first invalid field and what it accepts.
        """
        _int(self, "num_envs", 1)
        _int(self, "horizon", 1)
        _int(self, "num_sgd_iters", 1)
        _int(self, "sgd_minibatch_size", 1)
        _int(self, "update_chunk_size", 1)
        hper = self.horizons_per_env_reset
        if _bad_int(hper) or not (hper >= 1 or hper == -1):
            raise HyperparameterError(
                "horizons_per_env_reset", hper, "must be a whole number >= 1, or -1 (never reset)"
            )
        _number(self, "gamma", lambda v: 0.0 < v <= 1.0, "in (0, 1]")
        _number(self, "gae_lambda", lambda v: 0.0 <= v <= 1.0, "in [0, 1]")
        _number(self, "clip_param", lambda v: v > 0, "> 0")
        _number(self, "max_grad_norm", lambda v: v > 0, "> 0")
        _number(self, "vf_coeff", lambda v: v >= 0, ">= 0")
        _number(self, "entropy_coeff", lambda v: v >= 0, ">= 0")
        _number(self, "vf_clip_param", lambda v: v > 0, "> 0, or None (off)", optional=True)
        _number(self, "target_kl_div", lambda v: v > 0, "> 0, or None (off)", optional=True)
        _number(self, "dual_clip_param", lambda v: v > 1, "> 1, or None (off)", optional=True)
        for name in (
            "normalize_advantages",
            "normalize_rewards",
            "shuffle_minibatches",
            "accumulate_grads",
            "enable_amp",
        ):
            if not isinstance(getattr(self, name), bool):
                raise HyperparameterError(name, getattr(self, name), "must be true or false")
        for name in ("lr_schedule", "entropy_coeff_schedule"):
            _schedule(self, name)
        for name in ("env_config", "model_config"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, dict):
                raise HyperparameterError(name, value, "must be a dict of keyword arguments")
        if self.optimizer_config is not None and not isinstance(self.optimizer_config, dict):
            raise HyperparameterError(
                "optimizer_config", self.optimizer_config, "must be a dict of keyword arguments"
            )
        lr = self.optimizer_kwargs["lr"]
        if _bad_float(lr) or not lr > 0:
            raise HyperparameterError("optimizer_config.lr", lr, "must be a finite number > 0")
        resolve_device(self.device)
        return self


@dataclass(kw_only=True)
class RecurrentAlgorithmConfig(AlgorithmConfig):
    """Recurrent PPO hyperparameters: :class:`AlgorithmConfig` plus truncated BPTT."""

    #: Length of the sequences backpropagated through (recurrent models only);
    #: divides ``horizon`` and the minibatch size. Default 8.
    seq_len: int = 8
    #: Sequences between resets of the recurrent state while collecting
    #: (recurrent models only); ``-1`` (default) resets it only with the environment.
    seqs_per_state_reset: int = -1

    def build(self, env_cls: EnvFactory) -> RecurrentAlgorithm:  # type: ignore[override]
        """Build and validate the :class:`~rl8.algorithms.RecurrentAlgorithm`
        of this config (the rl8 1.0.0 form)."""
        from ._compat import build_algorithm

        return build_algorithm(self, env_cls)

    def validate(self) -> RecurrentAlgorithmConfig:
        super().validate()
        _int(self, "seq_len", 1)
        if self.horizon % self.seq_len:
            raise HyperparameterError(
                "seq_len", self.seq_len, f"must divide horizon={self.horizon}"
            )
        spsr = self.seqs_per_state_reset
        if _bad_int(spsr) or not (spsr >= 1 or spsr == -1):
            raise HyperparameterError(
                "seqs_per_state_reset", spsr, "must be a whole number >= 1, or -1"
            )
        if self.minibatch_size % self.seq_len:
            raise HyperparameterError(
                "sgd_minibatch_size",
                self.sgd_minibatch_size,
                f"must be a multiple of seq_len={self.seq_len} (minibatches hold whole sequences)",
            )
        return self


#: Fields that only recurrent PPO uses.
RECURRENT_FIELDS = ("seq_len", "seqs_per_state_reset")


def trainer_fields() -> list[dataclasses.Field]:
    """The hyperparameter fields of the app's ``trainer`` node: every field of
    :class:`RecurrentAlgorithmConfig` but the :data:`COMPONENT_FIELDS`."""
    return [
        f for f in dataclasses.fields(RecurrentAlgorithmConfig) if f.name not in COMPONENT_FIELDS
    ]


def field_types() -> dict[str, Any]:
    """The resolved type annotations of :class:`RecurrentAlgorithmConfig`."""
    return typing.get_type_hints(RecurrentAlgorithmConfig)


def resolve_device(device: Device) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; others are checked against
    what this torch build and machine offer.

    Raises:
        HyperparameterError: an unknown device, or one this machine doesn't have.
    """
    import torch

    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise HyperparameterError(
            "device", name, "use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
        ) from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = (
                "this torch build has no CUDA"
                if torch.version.cuda is None
                else "no GPU is visible"
            )
            raise HyperparameterError("device", name, f"{why}; use 'cpu' or 'auto'")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise HyperparameterError(
                "device", name, f"this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise HyperparameterError("device", name, "MPS is not available; use 'cpu' or 'auto'")
    elif dev.type not in ("cpu", "cuda", "mps"):
        raise HyperparameterError("device", name, "use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'")
    return dev


# -- helpers -------------------------------------------------------------------------------


def _default(f: dataclasses.Field) -> Any:
    if "default" in f.metadata:  # an env-tunable field (declared None)
        return f.metadata["default"]
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _bad_int(v: Any) -> bool:
    return isinstance(v, bool) or not isinstance(v, int)


def _bad_float(v: Any) -> bool:
    return isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v)


def _int(cfg: Any, name: str, minimum: int) -> None:
    v = getattr(cfg, name)
    if _bad_int(v) or v < minimum:
        raise HyperparameterError(name, v, f"must be a whole number >= {minimum}")


def _number(
    cfg: Any, name: str, ok: typing.Callable[[float], bool], accepts: str, optional: bool = False
) -> None:
    v = getattr(cfg, name)
    if optional and v is None:
        return
    if _bad_float(v) or not ok(v):
        raise HyperparameterError(name, v, f"must be a finite number {accepts}")


def _schedule(cfg: Any, name: str) -> None:
    kind = getattr(cfg, f"{name}_kind")
    if kind not in ("step", "interp"):
        raise HyperparameterError(f"{name}_kind", kind, "must be 'step' or 'interp'")
    points = getattr(cfg, name)
    if points is None:
        return
    accepts = "must be a list of [env_steps, value] pairs with env_steps >= 0 increasing"
    try:
        pairs = [(p[0], p[1]) for p in points if len(p) == 2]
    except TypeError:
        raise HyperparameterError(name, points, accepts) from None
    if not pairs or len(pairs) != len(points):
        raise HyperparameterError(name, points, accepts)
    steps = [s for s, _ in pairs]
    if any(_bad_float(s) or _bad_float(v) for s, v in pairs):
        raise HyperparameterError(name, points, accepts + " (finite numbers)")
    if steps != sorted(steps) or steps[0] < 0:
        raise HyperparameterError(name, points, accepts)
    if name == "lr_schedule" and any(v <= 0 for _, v in pairs):
        raise HyperparameterError(name, points, "learning rates must be > 0")
    if name == "entropy_coeff_schedule" and any(v < 0 for _, v in pairs):
        raise HyperparameterError(name, points, "entropy coefficients must be >= 0")
