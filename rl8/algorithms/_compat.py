"""rl8 1.0.0 construction forms of the algorithms.

rl8 1.0.0 built algorithms from a config object, ``AlgorithmConfig(...).build(env_cls)``
or ``Algorithm(env_cls, config=AlgorithmConfig(...))``; the current form is
``Algorithm(env_cls, **hyperparameters)``. Both work.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

from ..env import EnvFactory
from .config import AlgorithmConfig, RecurrentAlgorithmConfig

if TYPE_CHECKING:
    from .feedforward import Algorithm
    from .recurrent import RecurrentAlgorithm

__all__ = ["build_algorithm", "resolve_config"]

_Config = TypeVar("_Config", bound=AlgorithmConfig)


def resolve_config(
    config_cls: type[_Config],
    config: AlgorithmConfig | None,
    hyperparameters: Mapping[str, Any],
    owner: str,
) -> _Config:
    """The config of a new algorithm: a copy of ``config`` (rl8 1.0.0's
    ``config=`` argument) or one built from ``hyperparameters``.

    Raises:
        TypeError: Both given, ``config`` not an :class:`AlgorithmConfig`, or a
            :class:`RecurrentAlgorithmConfig` for the feedforward algorithm.
        ValueError: Unknown hyperparameter names.
    """
    if config is None:
        return cast(_Config, config_cls.from_kwargs(dict(hyperparameters)))
    if hyperparameters:
        raise TypeError(
            f"{owner}() got both config= and hyperparameter keywords "
            f"({', '.join(sorted(hyperparameters))}); pass one or the other."
        )
    if not isinstance(config, AlgorithmConfig):
        raise TypeError(
            f"{owner}(config=...) takes an AlgorithmConfig, got {type(config).__name__}."
        )
    if type(config) is RecurrentAlgorithmConfig and not issubclass(
        config_cls, RecurrentAlgorithmConfig
    ):
        raise TypeError(
            f"{owner}() got a RecurrentAlgorithmConfig; build a RecurrentAlgorithm "
            "(RecurrentAlgorithmConfig(...).build(env_cls)) instead."
        )
    # A copy, so that changing the caller's config later changes nothing here.
    # Only the fields config_cls has (a subclass such as TrainConfig has more;
    # a feedforward config lacks the recurrent ones, which keep their defaults).
    # Unset fields stay unset: the environment's hyperparameters may fill them.
    given = config.given()
    return config_cls(**{name: given[name] for name in config_cls.fields() if name in given})


@overload
def build_algorithm(  # type: ignore[overload-overlap]
    config: RecurrentAlgorithmConfig, env_cls: EnvFactory
) -> RecurrentAlgorithm: ...
@overload
def build_algorithm(config: AlgorithmConfig, env_cls: EnvFactory) -> Algorithm: ...
def build_algorithm(config: AlgorithmConfig, env_cls: EnvFactory) -> Algorithm | RecurrentAlgorithm:
    """rl8 1.0.0's ``AlgorithmConfig.build(env_cls)``: build the algorithm the
    config describes (:class:`~rl8.algorithms.RecurrentAlgorithm` for a
    :class:`RecurrentAlgorithmConfig`, else :class:`~rl8.algorithms.Algorithm`)
    and :meth:`~rl8.algorithms.AlgorithmBase.validate` it.

    Raises:
        ValueError: An invalid hyperparameter (named).
        rl8.env.EnvProtocolError: An environment of the rl8 1.0.0 form.
    """
    from .feedforward import Algorithm
    from .recurrent import RecurrentAlgorithm

    # TrainConfig (a RecurrentAlgorithmConfig subclass) says which with ``recurrent``.
    recurrent = getattr(config, "recurrent", isinstance(config, RecurrentAlgorithmConfig))
    cls = RecurrentAlgorithm if recurrent else Algorithm
    algorithm = cls(env_cls, config=config)
    algorithm.validate()
    return algorithm
