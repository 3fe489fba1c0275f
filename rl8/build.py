"""Validate a composed ``python -m rl8.train`` config and build its parts.

Three layers catch a bad config, each naming the key:

1. **Composition** (Hydra + OmegaConf, :mod:`rl8.config`): unknown keys and
   wrong types fail while the config is composed; :func:`check_keys` then
   catches keys added with ``+``, which Hydra adds unchecked.
2. **Validation** (:func:`validate`): ranges and cross-field rules the types
   cannot express (budgets > 0, finite numbers, ``optimizer.lr > 0``, ...).
3. **Build** (:func:`build`): ``_target_`` nodes are instantiated with
   :func:`hydra.utils.instantiate`, env parameters, model and optimizer
   arguments are checked against their classes, and the library's own
   validation runs; its :class:`~rl8.errors.HyperparameterError` carries the
   field, re-raised under the config key (``trainer.gamma`` ...).

Everything here runs before the first training step.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from .config import TRAINER_FIELDS, TrainAppConf
from .errors import ConfigError, HyperparameterError, did_you_mean

__all__ = [
    "Built",
    "build",
    "check_keys",
    "config_key",
    "core_error",
    "schedule_defaults",
    "validate",
]


# -- validation ---------------------------------------------------------------------------


def _plain(node: Any) -> Any:
    if isinstance(node, DictConfig | ListConfig):
        return OmegaConf.to_container(node, resolve=True)
    return node


def _check(ok: bool, key: str, value: Any, accepts: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is invalid: {accepts}.")


def _positive_or_null(cfg: Any, key: str, *, integer: bool) -> None:
    value = OmegaConf.select(cfg, key)
    kind = "a whole number (like 1000000 or 1e6)" if integer else "a finite number"
    ok = value is None or (
        math.isfinite(value) and value > 0 and (not integer or float(value).is_integer())
    )
    _check(ok, key, value, f"must be {kind} > 0, or null for no limit")


def check_keys(cfg: DictConfig) -> None:
    """Every key of ``cfg`` is one of the schema's, also those added with ``+``
    (Hydra adds those without checking).

    Raises:
        ConfigError: naming the unknown key and the closest known one.
    """
    try:
        # As plain data: a composed node keeps keys Hydra added to it in open_dict mode.
        OmegaConf.merge(OmegaConf.structured(TrainAppConf), OmegaConf.to_container(cfg))
    except ConfigKeyError as e:
        key = e.full_key or str(e.key)
        parent, _, name = key.rpartition(".")
        node = OmegaConf.select(OmegaConf.structured(TrainAppConf), parent) if parent else None
        known = [str(k) for k in node] if isinstance(node, DictConfig) else []
        if not parent:
            known = [f.name for f in dataclasses.fields(TrainAppConf)]
        raise ConfigError(
            f"{key} is not a config key{did_you_mean(name, known)}; "
            "see python -m rl8.train --cfg job for every key."
        ) from None
    except ValidationError as e:
        raise ConfigError(f"{e.full_key}: {_first_line(e)}") from None


def validate(cfg: DictConfig) -> None:
    """Check ranges and cross-field rules that the schema's types can't.

    Raises:
        ConfigError: naming the first invalid key and what it accepts.
    """
    check_keys(cfg)
    _check(0 <= cfg.seed < 2**32, "seed", cfg.seed, "must be in [0, 2**32)")
    objective = _plain(cfg.objective)
    names = [objective] if isinstance(objective, str) else objective
    _check(
        isinstance(names, list) and bool(names) and all(isinstance(n, str) and n for n in names),
        "objective",
        objective,
        "must be a stat name like 'eval/returns/mean', or a list of them",
    )
    for key in ("stop.max_env_steps", "stop.max_steps"):
        _positive_or_null(cfg, key, integer=True)
    for key in ("stop.max_seconds", "guard.max_kl_div", "guard.max_vf_loss"):
        _positive_or_null(cfg, key, integer=False)
    for key in ("record.episodes", "record.fps"):
        _check(OmegaConf.select(cfg, key) >= 1, key, OmegaConf.select(cfg, key), "must be >= 1")
    threshold = cfg.stop.threshold
    _check(
        threshold is None or math.isfinite(threshold),
        "stop.threshold",
        threshold,
        "must be a finite number",
    )
    _check(cfg.stop.window >= 1, "stop.window", cfg.stop.window, "must be a whole number >= 1")
    if (cfg.stop.metric is None) != (threshold is None):
        raise ConfigError(
            "stop.metric and stop.threshold go together: set both (e.g. "
            "stop.metric=eval/returns/mean stop.threshold=30) or neither."
        )
    _check(cfg.eval.every >= 0, "eval.every", cfg.eval.every, "must be >= 0 (0: only at the end)")
    _check(
        cfg.checkpoint.every >= 0,
        "checkpoint.every",
        cfg.checkpoint.every,
        "must be >= 0 (0: no step rule)",
    )
    every_s = cfg.checkpoint.every_s
    _check(
        math.isfinite(every_s) and every_s >= 0,
        "checkpoint.every_s",
        every_s,
        "must be a finite number >= 0 (0: no time rule)",
    )
    log_every_s = cfg.progress.log_every_s
    _check(
        math.isfinite(log_every_s) and log_every_s > 0,
        "progress.log_every_s",
        log_every_s,
        "must be a finite number > 0",
    )
    optimizer = cfg.optimizer
    if not isinstance(optimizer, DictConfig) or "_target_" not in optimizer:
        raise ConfigError(
            "optimizer must be a node with _target_ (a torch.optim.Optimizer class), "
            "_partial_: true and its arguments; pick one with optimizer=adam|adamw|sgd."
        )
    for name, value in optimizer.items():
        if isinstance(value, float):
            _check(math.isfinite(value), f"optimizer.{name!s}", value, "must be finite")
    lr = optimizer.get("lr")
    if lr is not None:
        _check(
            isinstance(lr, int | float) and not isinstance(lr, bool) and lr > 0,
            "optimizer.lr",
            lr,
            "must be a finite number > 0, or null for rl8's default",
        )


# -- build ---------------------------------------------------------------------------------


@dataclass
class Built:
    """What the app needs, built from a validated config."""

    #: The library's config of the run (``train_config.build(tracker=...)``).
    train_config: Any
    #: The environment class (``train_config.env_cls`` may bind extra arguments) and its config.
    env_cls: Any
    env_config: dict[str, Any]
    #: The domain randomization schedule (an empty one for ``schedule=none``); or None.
    schedule: Any
    #: Extra stop conditions from ``stop.conditions``.
    conditions: list[Callable[[Mapping[str, float]], bool]]
    #: ``eval.env_config`` (None when empty).
    eval_env_config: dict[str, Any] | None
    #: A schedule drawing ``eval.env_config`` per sub-env at each evaluation,
    #: when some of its values are distributions (e.g. ``{low: 0.5, high: 2}``).
    eval_schedule: Any = None


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]


def _instantiate(node: Any, key: str, target_key: str | None = None, **kwargs: Any) -> Any:
    """``instantiate(node)``, with any failure reported as one line naming ``key``
    (``target_key``: the key holding the dotted path, default ``key._target_``)."""
    target = node.get("_target_") if isinstance(node, DictConfig) else None
    try:
        return instantiate(node, **kwargs)
    except InstantiationException as e:
        cause = e.__cause__
        if isinstance(cause, ImportError) or "Error locating target" in str(e):
            raise ConfigError(
                f"{target_key or key + '._target_'}={target!r} cannot be imported: "
                "check the dotted path "
                "(package.module.Name) and that the package is installed."
            ) from None
        raise ConfigError(f"{key}: {_first_line(cause or e)}") from None
    except (ValueError, TypeError, ImportError) as e:
        raise ConfigError(f"{key}: {_first_line(e)}") from None


def _unwrap(obj: Any) -> tuple[Any, dict[str, Any]]:
    """Split an instantiated ``_partial_`` node into (callable, keyword arguments)."""
    if isinstance(obj, functools.partial) and not obj.args:
        return obj.func, dict(obj.keywords)
    return obj, {}


def _check_kwargs(fn: Any, kwargs: Mapping[str, Any], key: str, skip: int = 0) -> None:
    """Raise naming ``key.<name>`` for a keyword ``fn`` doesn't accept."""
    try:
        params = list(inspect.signature(fn).parameters.values())[skip:]
    except (TypeError, ValueError):
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    accepted = [
        p.name
        for p in params
        if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    ]
    name = getattr(fn, "__name__", repr(fn))
    for k in kwargs:
        if k not in accepted:
            raise ConfigError(
                f"{key}.{k} is not an argument of {name}; it accepts: {', '.join(accepted)}."
            )


#: Config keys of the :class:`~rl8.TrainConfig` fields set outside ``trainer``.
_COMPONENT_KEYS = {
    "env_config": "env.config",
    "model_config": "model.config",
    "optimizer_config": "optimizer",
    "optimizer_config.lr": "optimizer.lr",
    "device": "device",
    "env_cls": "env._target_",
}


def config_key(field_name: str) -> str:
    """The config key of a :class:`~rl8.TrainConfig` field (``gamma`` -> ``trainer.gamma``,
    ``model_config.hiddens`` -> ``model.config.hiddens``)."""
    if field_name in TRAINER_FIELDS:
        return f"trainer.{field_name}"
    head, dot, rest = field_name.partition(".")
    if dot and head in ("env_config", "model_config"):
        return f"{_COMPONENT_KEYS[head]}.{rest}"
    return _COMPONENT_KEYS.get(field_name, field_name)


def core_error(e: BaseException) -> ConfigError:
    """The library's error for an invalid field, as a :class:`ConfigError` naming
    the config key (a :class:`~rl8.algorithms.HyperparameterError` carries the
    field; anything else is reported as it is)."""
    if isinstance(e, HyperparameterError):
        return e.renamed(config_key(e.field))
    return ConfigError(f"invalid config: {_first_line(e)}")


def _is_recurrent(model_cls: Any) -> bool:
    from .models import RecurrentModel

    return inspect.isclass(model_cls) and issubclass(model_cls, RecurrentModel)


def build(cfg: DictConfig) -> Built:
    """Validate ``cfg`` and instantiate its ``_target_`` nodes.

    Returns:
        The :class:`Built` parts; ``built.train_config.build(tracker=...)``
        makes the trainer (the core checks the hyperparameters there; wrap its
        ``ValueError`` with :func:`core_error`).

    Raises:
        ConfigError: naming the first invalid key.
    """
    from .trainers import TrainConfig

    validate(cfg)

    # Environment: a factory, with its physical parameters checked against the class.
    if not isinstance(cfg.env, DictConfig) or "_target_" not in cfg.env:
        raise ConfigError(
            "env must be a config node with a _target_ (an env class); pick an option "
            "with env=cartpole (see conf/env/) or set env._target_."
        )
    env_node = OmegaConf.masked_copy(cfg.env, [str(k) for k in cfg.env if k != "config"])
    # Plain containers: factories get dicts and lists, not OmegaConf nodes.
    env_class, env_kwargs = _unwrap(_instantiate(env_node, "env", _convert_="all"))
    _check_kwargs(env_class, env_kwargs, "env", skip=2)  # after num_envs, horizon
    env_cls = functools.partial(env_class, **env_kwargs) if env_kwargs else env_class
    env_config = _plain(cfg.env.get("config")) or {}
    eval_env_config = _plain(cfg.eval.env_config) or None
    validate_env = getattr(env_class, "validate_config", None)
    eval_schedule = None
    if eval_env_config and any(isinstance(v, Mapping) for v in eval_env_config.values()):
        # Distributions (a range to evaluate on) are drawn by a schedule of their own.
        from .randomization import Schedule

        try:
            eval_schedule = Schedule.from_config(params=eval_env_config, seed=cfg.seed + 1)
            if getattr(env_class, "params", None) is not None:
                eval_schedule.validate(env_class, schedule_defaults(env_class, env_config))
        except (ValueError, TypeError) as e:
            raise ConfigError(f"eval.env_config: {_first_line(e)}") from None
    if validate_env is not None:
        checks = [("env.config", env_config)]
        if eval_schedule is None:
            checks.append(("eval.env_config", eval_env_config))
        for key, conf in checks:
            try:
                validate_env(conf)
            except (ValueError, TypeError) as e:
                raise ConfigError(f"{key}: {_first_line(e)}") from None

    # Model: a class and its kwargs; a recurrent model picks the recurrent trainer.
    model_cls = None
    model_config = _plain(cfg.model.config) or {}
    if cfg.model._target_ is not None:
        model_node = OmegaConf.masked_copy(
            cfg.model, [k for k in cfg.model if k not in ("config", "recurrent")]
        )
        model_cls, model_kwargs = _unwrap(_instantiate(model_node, "model"))
        model_config = {**model_kwargs, **model_config}
        _check_kwargs(model_cls, model_config, "model.config", skip=2)
    recurrent = cfg.model.recurrent
    if recurrent is None:
        recurrent = _is_recurrent(model_cls)

    # Optimizer: instantiated as a partial, split into class and kwargs.
    optimizer_cls, optimizer_config = _unwrap(_instantiate(cfg.optimizer, "optimizer"))
    _check_kwargs(optimizer_cls, optimizer_config, "optimizer", skip=1)

    # null means the default: dropped here, filled in by the library.
    hparams = {
        name: _plain(cfg.trainer[name])
        for name in TRAINER_FIELDS
        if name != "distribution_cls" and cfg.trainer[name] is not None
    }
    if cfg.trainer.distribution_cls is not None:
        node = OmegaConf.create({"_target_": cfg.trainer.distribution_cls, "_partial_": True})
        hparams["distribution_cls"], _ = _unwrap(
            _instantiate(node, "trainer.distribution_cls", "trainer.distribution_cls")
        )

    # Domain randomization schedule, checked against the env's parameters.
    schedule = None
    if cfg.schedule is not None:
        schedule = _instantiate(cfg.schedule, "schedule", seed=cfg.seed)
        params = getattr(env_class, "params", None)
        if params is not None and hasattr(schedule, "validate"):
            try:
                schedule.validate(env_class, schedule_defaults(env_class, env_config))
            except ValueError as e:
                raise ConfigError(f"schedule: {_first_line(e)}") from None

    conditions = [
        _instantiate(node, f"stop.conditions[{i}]") for i, node in enumerate(cfg.stop.conditions)
    ]
    for i, c in enumerate(conditions):
        if not callable(c):
            raise ConfigError(
                f"stop.conditions[{i}] built a {type(c).__name__}, not a callable "
                "condition(stats) -> bool (see rl8.conditions)."
            )

    try:
        train_config = TrainConfig(
            env_cls,
            env_config=env_config or None,
            model_cls=model_cls,
            model_config=model_config or None,
            optimizer_cls=optimizer_cls,
            optimizer_config=optimizer_config,
            device=cfg.device,
            recurrent=bool(recurrent),
            **hparams,
        ).validate()
    except (TypeError, ValueError) as e:
        raise core_error(e) from None
    hper = train_config.horizons_per_env_reset
    if hper < 0 and eval_env_config:
        raise ConfigError(
            "eval.env_config needs trainer.horizons_per_env_reset > 0: with -1 the env is "
            "reset only once, before training, so evaluation would never use it."
        )
    if hper > 0 and cfg.eval.every % hper:
        raise ConfigError(
            f"eval.every={cfg.eval.every} must be a multiple of "
            f"trainer.horizons_per_env_reset={hper}: evaluation starts on an env reset."
        )
    if hper < 0 and getattr(schedule, "params", None):
        raise ConfigError(
            "schedule needs trainer.horizons_per_env_reset > 0: a schedule is drawn at env "
            "resets, and with -1 the env is reset only once, before training."
        )
    return Built(
        train_config=train_config,
        env_cls=env_class,
        env_config=env_config,
        schedule=schedule,
        conditions=conditions,
        eval_env_config=eval_env_config,
        eval_schedule=eval_schedule,
    )


def schedule_defaults(env_cls: Any, env_config: Mapping[str, Any]) -> dict[str, float]:
    """The values a schedule's ``additive``/``scaling`` params apply to: the
    env's parameter defaults, updated with its base config (numbers only)."""
    params = getattr(env_cls, "params", None) or {}
    out = {name: float(p.default) for name, p in params.items()}
    for k, v in env_config.items():
        if isinstance(v, int | float) and not isinstance(v, bool):
            out[k] = float(v)
    return out
