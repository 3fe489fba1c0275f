"""The sweeper's settings besides the search space: checked before any trial starts,
and the sampler and pruner built from their ``_target_`` configs.

Every problem is a :class:`SweeperConfigError` naming the ``hydra.sweeper`` key.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from hydra.utils import get_class, get_method

from .errors import SweeperConfigError, one_line
from .reporter import check_aggregate, instantiate_target

if TYPE_CHECKING:
    import optuna

__all__ = [
    "DEFAULT_SAMPLER",
    "accepted_kwargs",
    "build_pruner",
    "build_sampler",
    "check_aggregate_setting",
    "check_counts",
    "check_directions",
    "check_known",
    "custom_search_space",
    "sampler_class",
]

log = logging.getLogger(__name__)

DEFAULT_SAMPLER = "optuna.samplers.TPESampler"


def check_directions(direction: Any) -> list[str]:
    """``hydra.sweeper.direction`` (one or a list) as ``["minimize" | "maximize", ...]``."""
    items = list(direction) if isinstance(direction, list | tuple) else [direction]
    out = []
    for x in items:
        s = str(getattr(x, "name", x)).lower()
        if s not in ("minimize", "maximize"):
            raise SweeperConfigError(
                f"hydra.sweeper.direction: {x!r} is not 'minimize' or 'maximize'"
            )
        out.append(s)
    if not out:
        raise SweeperConfigError("hydra.sweeper.direction: empty list")
    return out


def check_known(unknown: Sequence[str], known: Iterable[str]) -> None:
    """Fail on the first key of ``unknown`` (``hydra.sweeper.*`` keys the sweeper
    does not take, e.g. a typo added with ``+``), naming the closest of ``known``."""
    from ..errors import did_you_mean

    if unknown:
        names = sorted(known)
        raise SweeperConfigError(
            f"hydra.sweeper.{unknown[0]} is not a setting of rl8's Optuna sweeper"
            f"{did_you_mean(unknown[0], names)}; its settings: {', '.join(names)}."
        )


def check_counts(counts: Mapping[str, Any], durations: Mapping[str, Any]) -> None:
    """``n_trials >= 0``, ``n_jobs >= 1``, ``seeds_per_trial >= 1`` (integers); the
    ``durations`` (seconds: ``timeout``, ``heartbeat_interval``, ...) > 0 or null."""
    for key, v in counts.items():
        low = 0 if key == "n_trials" else 1
        if not isinstance(v, int) or isinstance(v, bool) or v < low:
            raise SweeperConfigError(f"hydra.sweeper.{key}={v!r}: expected an integer >= {low}")
    for key, v in durations.items():
        if v is not None and not (
            isinstance(v, int | float) and not isinstance(v, bool) and 0 < v < math.inf
        ):
            raise SweeperConfigError(f"hydra.sweeper.{key}={v!r}: expected seconds > 0")


def check_aggregate_setting(how: str) -> str:
    """``hydra.sweeper.aggregate``, normalized (see :func:`~.reporter.check_aggregate`)."""
    try:
        return check_aggregate(how)
    except ValueError as e:
        raise SweeperConfigError(str(e)) from None


def custom_search_space(path: str | None) -> Callable[..., Any] | None:
    """The function ``hydra.sweeper.custom_search_space`` names, or None."""
    if not path:
        return None
    try:
        with _unlogged_lookup():
            return get_method(path)
    except Exception as e:
        raise SweeperConfigError(
            f"hydra.sweeper.custom_search_space={path!r}: {one_line(e)}"
        ) from e


@contextmanager
def _unlogged_lookup() -> Iterator[None]:
    """Hydra's ``get_class``/``get_method`` log a lookup error before raising it; the
    sweeper reports it once, as one line (:func:`~.errors.one_line`)."""
    logger = logging.getLogger("hydra.utils")
    disabled, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = disabled


def _optuna_class(target: Any, base: type, key: str) -> type:
    """The class ``target`` names, which must subclass ``base``."""
    try:
        with _unlogged_lookup():
            cls = get_class(str(target))
    except Exception as e:
        raise SweeperConfigError(f"{key}._target_={target!r}: {one_line(e)}") from e
    if not issubclass(cls, base):
        raise SweeperConfigError(
            f"{key}._target_={target!r} is not an Optuna {key.rsplit('.', 1)[-1]} class"
        )
    return cls


#: Packages Optuna's samplers import only when they first sample: checked up front.
_SAMPLER_NEEDS = {
    "CmaEsSampler": ["cmaes"],
    "QMCSampler": ["scipy"],
    "GPSampler": ["scipy", "torch"],
}


def sampler_class(cfg: Mapping[str, Any] | None) -> type:
    """The sampler class of ``hydra.sweeper.sampler`` (TPE when unset), with the
    optional packages it needs at sampling time checked now.

    Raises:
        SweeperConfigError: an unknown class, or a missing package (named with
            its ``pip install``).
    """
    import importlib.util

    import optuna

    target = (cfg or {"_target_": DEFAULT_SAMPLER}).get("_target_")
    cls = _optuna_class(target, optuna.samplers.BaseSampler, "hydra.sweeper.sampler")
    missing = [
        m for m in _SAMPLER_NEEDS.get(cls.__name__, []) if importlib.util.find_spec(m) is None
    ]
    if missing:
        raise SweeperConfigError(
            f"hydra.sweeper.sampler: {cls.__name__} needs the {' and '.join(missing)} "
            f"package{'s' if len(missing) > 1 else ''}: pip install {' '.join(missing)}"
        )
    return cls


def build_sampler(
    cls: type,
    cfg: Mapping[str, Any] | None,
    seed: int,
    grid_space: dict[str, list[Any]] | None,
) -> optuna.samplers.BaseSampler:
    """``cls`` built from ``cfg`` (and the grid sampler's ``search_space``), seeded
    per trial: trial N samples with ``seed + N``, where ``seed`` is the config's
    ``seed`` or else the given one (:class:`TrialSeededSampler`). Workers sharing a
    study then never draw the same sample, and a study is reproducible whatever the
    number of workers. The QMC and grid samplers keep one seed: it orders the points
    of all trials (the grid sampler picks unvisited points itself)."""
    import optuna

    kwargs = accepted_kwargs(cls, cfg or {}, "hydra.sweeper.sampler")
    if kwargs.get("seed") is not None:
        seed = int(kwargs["seed"])
    if grid_space is not None:
        kwargs["search_space"] = grid_space

    def build(s: int) -> optuna.samplers.BaseSampler:
        try:
            return cls(**{**kwargs, "seed": s})
        except Exception as e:
            raise SweeperConfigError(f"hydra.sweeper.sampler ({cls.__name__}): {e}") from e

    if issubclass(cls, optuna.samplers.QMCSampler | optuna.samplers.GridSampler):
        return build(seed)  # the seed orders points for all trials: one for every worker
    from .sampling import TrialSeededSampler

    return TrialSeededSampler(build, seed)


def build_pruner(
    cfg: Mapping[str, Any] | None, multi: bool
) -> tuple[optuna.pruners.BasePruner, dict[str, Any] | None]:
    """The pruner of ``hydra.sweeper.pruner`` (never pruning when unset), and the
    config the jobs' reporters build it from (``None`` for no pruner)."""
    import optuna

    if not cfg or not cfg.get("_target_"):
        return optuna.pruners.NopPruner(), None
    target = cfg["_target_"]
    cls = _optuna_class(target, optuna.pruners.BasePruner, "hydra.sweeper.pruner")
    # what the jobs' reporters instantiate (see reporter.TrialReporter.study)
    job_cfg = {"_target_": target, **accepted_kwargs(cls, cfg, "hydra.sweeper.pruner")}
    try:
        pruner = instantiate_target(job_cfg)
    except Exception as e:
        raise SweeperConfigError(f"hydra.sweeper.pruner ({target!r}): {e}") from e
    if multi and not isinstance(pruner, optuna.pruners.NopPruner):
        log.warning("Optuna cannot prune multi-objective studies: the pruner is not used")
    return pruner, job_cfg


def accepted_kwargs(cls: type, cfg: Mapping[str, Any], key: str) -> dict[str, Any]:
    """``cfg`` minus ``_target_``, minus (with a warning) the keys ``cls`` does not take.

    Lets ``hydra.sweeper.sampler._target_=optuna.samplers.RandomSampler`` work on top
    of the TPE defaults, and an experiment's pruner settings survive a pruner switch.
    """
    kwargs = {k: v for k, v in cfg.items() if k != "_target_"}
    try:
        accepted = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return kwargs
    if any(p.kind == p.VAR_KEYWORD for p in accepted.values()):
        return kwargs
    dropped = sorted(k for k in kwargs if k not in accepted)
    if dropped:
        log.warning(f"{key}: {cls.__name__} does not take {dropped}; ignored")
    return {k: v for k, v in kwargs.items() if k in accepted}
