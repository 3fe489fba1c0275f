"""A trial's Hydra jobs: the overrides that go out to them, and the trial's outcome
read back from their returns (one job per seed)."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from .reporter import aggregate
from .space import SearchParam, format_value, quote

if TYPE_CHECKING:
    import optuna

__all__ = ["Outcome", "job_extras", "outcome", "searched_overrides"]

log = logging.getLogger(__name__)


def searched_overrides(
    trial: optuna.Trial,
    space: dict[str, SearchParam],
    custom_fn: Callable[..., Any] | None,
    config: Any,
    custom_name: str | None,
) -> list[str]:
    """The overrides of the trial's sampled values; ``custom_fn(config, trial)``
    (``hydra.sweeper.custom_search_space``, named ``custom_name``) may add more."""
    out = [space[name].override(trial.params[name]) for name in space]
    if custom_fn is None:
        return out
    extra = custom_fn(config, trial)
    if extra is None:
        out += [f"{k}={format_value(v)}" for k, v in trial.params.items() if k not in space]
    elif isinstance(extra, Mapping):
        out += [f"{k}={format_value(v)}" for k, v in extra.items()]
    elif isinstance(extra, Sequence) and not isinstance(extra, str):
        out += [str(x) for x in extra]
    else:
        raise TypeError(
            f"custom_search_space {custom_name} returned {type(extra).__name__}; "
            "expected None, a dict {key: value} or a list of overrides"
        )
    return out


def job_extras(
    storage: str,
    study_name: str,
    number: int,
    seed_index: int,
    seed: int | None,
    parent_run_id: str | None,
) -> list[str]:
    """The overrides the sweeper adds to a job: its seed (``seeds_per_trial > 1``),
    its ``trial`` node (what its reporter connects to) and the MLflow parent run."""
    return [
        *([f"++seed={seed}"] if seed is not None else []),
        f"++trial.storage={quote(storage)}",
        f"++trial.study_name={quote(study_name)}",
        f"++trial.number={number}",
        f"++trial.seed_index={seed_index}",
        *([f"++mlflow.parent_run_id={parent_run_id}"] if parent_run_id else []),
    ]


@dataclass
class Outcome:
    """What a trial's jobs returned: a failure wins over pruning, pruning over values."""

    values: list[float] | None = None  # one per objective, aggregated over seeds
    failure: str | None = None  # the first failure
    # a job could not track (raised a ``TrackingError``): the sweep must stop
    untracked: str | None = None
    pruned: BaseException | None = None  # the first optuna.TrialPruned
    seed_values: list[Any] = field(default_factory=list)  # per seed, with several seeds
    job_dirs: list[str] = field(default_factory=list)


def outcome(number: int, returns: list[JobReturn], n_obj: int, how: str) -> Outcome:
    """Read trial ``number``'s job returns (one per seed), combining seeds with ``how``.

    A job fails when it raised, or returned something other than ``n_obj``
    finite floats; a failure is logged with its traceback.
    """
    import optuna

    out = Outcome(job_dirs=[d for d in map(_output_dir, returns) if d])
    per_seed: list[list[float]] = []
    for k, ret in enumerate(returns):
        who = f"seed-job {k}: " if len(returns) > 1 else ""
        if ret.status == JobStatus.COMPLETED:
            try:
                per_seed.append(_objective_values(ret.return_value, n_obj))
            except ValueError as e:
                out.failure = out.failure or f"{who}{e}"
            continue
        # The exception the job raised (JobReturn.return_value would re-raise it).
        exc = ret._return_value
        if isinstance(exc, optuna.TrialPruned):
            out.pruned = out.pruned or exc
            continue
        out.failure = out.failure or f"{who}{type(exc).__name__}: {exc}"
        if any(c.__name__ == "TrackingError" for c in type(exc).__mro__):
            out.untracked = out.untracked or f"{who}{exc}"
            continue
        log.warning(
            f"Trial {number} {who}failed: {type(exc).__name__}: {exc}",
            exc_info=(type(exc), exc, exc.__traceback__)
            if isinstance(exc, BaseException)
            else None,
        )
    if len(returns) > 1:
        out.seed_values = [v[0] if n_obj == 1 else v for v in per_seed]
    if out.failure is None and out.pruned is None:
        out.values = [aggregate([v[j] for v in per_seed], how) for j in range(n_obj)]
    return out


def _objective_values(value: Any, n_obj: int) -> list[float]:
    if n_obj == 1:
        if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 1:
            value = value[0]
        try:
            values = [float(value)]
        except (TypeError, ValueError):
            raise ValueError(f"the job returned {value!r}, not a float") from None
    else:
        try:
            values = [float(v) for v in value]
        except (TypeError, ValueError):
            raise ValueError(f"the job returned {value!r}, not a list of {n_obj} floats") from None
        if len(values) != n_obj:
            raise ValueError(f"the job returned {len(values)} values for {n_obj} objectives")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"the job returned a non-finite objective {value!r}")
    return values


def _output_dir(ret: JobReturn) -> str | None:
    out = OmegaConf.select(ret.hydra_cfg, "hydra.runtime.output_dir") if ret.hydra_cfg else None
    return str(out) if out else ret.working_dir
