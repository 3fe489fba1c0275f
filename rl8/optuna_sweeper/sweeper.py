"""Hydra Sweeper running an Optuna study (optuna>=4) through Hydra's launcher.

Selected with ``hydra/sweeper=optuna`` (config: :mod:`rl8.optuna_sweeper.config`;
Hydra instantiates the thin subclass
``hydra_plugins.rl8_optuna_sweeper.optuna_sweeper.OptunaSweeper``). User guide:
docs/optuna.md.

One sweep:

1. validates everything before any trial (search space grammar and bounds,
   sampler/pruner targets, directions, that the overrides compose);
2. opens (or resumes) the study in its storage -- by default a journal file in
   the sweep directory -- and records the command line and base config on it;
3. asks ``n_jobs`` trials at a time, launches their jobs (``seeds_per_trial``
   per trial) with a single ``launcher.launch()`` call and tells Optuna the
   outcome: COMPLETE (aggregated return values), PRUNED (a job raised
   ``optuna.TrialPruned``) or FAIL (a job raised or returned NaN; the reason is
   the trial user attribute ``fail_reason``);
4. stops when the study holds ``n_trials`` finished trials or after ``timeout``;
5. writes ``optimization_results.yaml`` and plots in the sweep directory and logs
   them to an MLflow parent run whose id every job receives as
   ``mlflow.parent_run_id``.
"""

from __future__ import annotations

import logging
import math
import os
import shlex
import socket
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    Glob,
    IntervalSweep,
    Override,
    OverrideType,
    RangeSweep,
    Transformer,
)
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from ..errors import ConfigError
from .reporter import (
    ATTR_AGGREGATE,
    ATTR_PRUNER,
    ATTR_SEEDS,
    aggregate,
    check_aggregate,
    instantiate_target,
    locate,
    open_storage,
)

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution

__all__ = [
    "OptunaSweeper",
    "SearchParam",
    "SearchSpaceError",
    "SweeperConfigError",
    "format_value",
    "parse_search_space",
]

log = logging.getLogger(__name__)

RESULTS_FILE = "optimization_results.yaml"
JOURNAL_FILE = "optuna.journal"
ATTR_OWNER = "rl8:owner"
ATTR_JOB_NUMS = "rl8:job_nums"
_PREFIX = {
    OverrideType.CHANGE: "",
    OverrideType.ADD: "+",
    OverrideType.FORCE_ADD: "++",
    OverrideType.DEL: "~",
}
_MAX_VALIDATED_CHOICES = 20


class SweeperConfigError(ConfigError):
    """Invalid ``hydra.sweeper`` settings (raised before any trial starts).

    A :class:`~rl8.errors.ConfigError`: Hydra prints its one-line message, no traceback."""


class SearchSpaceError(SweeperConfigError):
    """Invalid search space (raised before any trial starts, naming the parameter)."""


# --------------------------------------------------------------------------- values
_PARSER: OverridesParser | None = None


def _parser() -> OverridesParser:
    global _PARSER
    if _PARSER is None:
        _PARSER = OverridesParser.create()
    return _PARSER


def _quote(s: str) -> str:
    if "'" not in s:
        return f"'{s}'"
    if '"' not in s:
        return f'"{s}"'
    return "'" + s.replace("'", "\\'") + "'"


def format_value(value: Any) -> str:
    """Render a Python value as an override value that Hydra parses back to it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        if not value or any(c.isspace() for c in value):
            return _quote(value)
        try:
            parsed = _parser().parse_override(f"k={value}")
            if not parsed.is_sweep_override() and parsed.value() == value:
                return value
        except Exception:
            pass
        return _quote(value)
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{format_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Sequence):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    return _quote(str(value))


# --------------------------------------------------------------------------- search space
@dataclass
class SearchParam:
    """One searched config key and its Optuna distribution."""

    name: str  # Optuna parameter name == config key (without +/++ prefix)
    prefix: str  # "", "+" or "++"
    text: str  # the grammar it came from, e.g. "interval(0.1, 0.3)"
    distribution: BaseDistribution
    # categorical choices that are override grammar (lists/dicts), used verbatim
    raw_choices: frozenset[str] = field(default_factory=frozenset)

    def override(self, value: Any) -> str:
        if isinstance(value, str) and value in self.raw_choices:
            rendered = value
        else:
            rendered = format_value(value)
        return f"{self.prefix}{self.name}={rendered}"

    def example_values(self) -> list[Any]:
        """Values used to check that the overrides compose (first choice/low bound...)."""
        from optuna.distributions import CategoricalDistribution

        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            return list(d.choices[:_MAX_VALIDATED_CHOICES])
        return [d.low]  # type: ignore[attr-defined]

    def grid_values(self) -> list[Any]:
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            return list(d.choices)
        if isinstance(d, IntDistribution) and not d.log:
            return list(range(d.low, d.high + 1, d.step))
        if isinstance(d, FloatDistribution) and d.step is not None:
            n = round((d.high - d.low) / d.step)
            return [d.low + i * d.step for i in range(n + 1)]
        raise SearchSpaceError(
            f"{self.name}={self.text}: the grid sampler needs a discrete space "
            "(choice(...) or range(...)), not an interval"
        )


def _key_name(override: Override) -> str:
    if override.package is not None:
        return f"{override.key_or_group}@{override.package}"
    return override.key_or_group


def _num(x: Any) -> float:
    return float(x)


def _distribution_from_override(name: str, text: str, override: Override) -> SearchParam:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    prefix = _PREFIX[override.type]
    if override.type == OverrideType.DEL:
        raise SearchSpaceError(f"{name}: a delete override (~) cannot be searched")
    value = override.value()
    tags = set(getattr(value, "tags", set()) or set())
    unknown_tags = tags - {"log"}
    if unknown_tags:
        raise SearchSpaceError(
            f"{name}={text}: unsupported tag(s) {sorted(unknown_tags)} (only 'log' is understood)"
        )
    log_scale = "log" in tags

    if isinstance(value, ChoiceSweep) or (isinstance(value, RangeSweep) and value.shuffle):
        if log_scale:
            raise SearchSpaceError(f"{name}={text}: tag(log, ...) applies to intervals only")
        choices: list[Any] = []
        raw: set[str] = set()
        for x in override.sweep_iterator(transformer=Transformer.identity):
            if isinstance(x, bool | int | float | str):
                choices.append(x)
            elif isinstance(x, list | dict):
                enc = Transformer.str(x)  # what Transformer.encode returns for a list/dict
                raw.add(enc)
                choices.append(enc)
            else:
                raise SearchSpaceError(f"{name}={text}: unsupported choice value {x!r}")
        if not choices:
            raise SearchSpaceError(f"{name}={text}: choice() needs at least one value")
        if len(set(map(repr, choices))) != len(choices):
            raise SearchSpaceError(f"{name}={text}: duplicate choices")
        return SearchParam(name, prefix, text, CategoricalDistribution(choices), frozenset(raw))

    if isinstance(value, RangeSweep):
        if log_scale:
            raise SearchSpaceError(
                f"{name}={text}: tag(log, ...) applies to intervals, not range()"
            )
        if value.step is None or _num(value.step) <= 0:
            raise SearchSpaceError(f"{name}={text}: range() needs a positive step")
        items = list(override.sweep_iterator(transformer=Transformer.identity))
        if not items:
            raise SearchSpaceError(f"{name}={text}: range() is empty (start >= stop)")
        bounds = (value.start, value.stop, value.step)
        if all(isinstance(v, int) and not isinstance(v, bool) for v in bounds):
            first, last = items[0], items[-1]
            assert isinstance(first, int) and isinstance(last, int)
            dist: BaseDistribution = IntDistribution(first, last, step=int(value.step))
        else:
            start, step = _num(value.start), _num(value.step)
            if len(items) == 1:
                return SearchParam(name, prefix, text, CategoricalDistribution([float(start)]))
            dist = FloatDistribution(start, start + (len(items) - 1) * step, step=step)
        return SearchParam(name, prefix, text, dist)

    if isinstance(value, IntervalSweep):
        low, high = value.start, value.end
        if low is None or high is None:
            raise SearchSpaceError(f"{name}={text}: interval() needs two bounds")
        if not low < high:
            raise SearchSpaceError(f"{name}={text}: low ({low}) must be < high ({high})")
        if log_scale and low <= 0:
            raise SearchSpaceError(f"{name}={text}: a log interval needs low > 0 (got low={low})")
        if isinstance(low, int) and isinstance(high, int):
            dist = IntDistribution(low, high, log=log_scale)
        else:
            dist = FloatDistribution(float(low), float(high), log=log_scale)
        return SearchParam(name, prefix, text, dist)

    raise SearchSpaceError(f"{name}={text}: {type(value).__name__} is not supported")


def parse_search_space(
    params: Mapping[str, Any] | None, arguments: Sequence[str] = ()
) -> tuple[dict[str, SearchParam], list[str]]:
    """Split ``hydra.sweeper.params`` + command-line ``arguments`` into a search space and
    fixed overrides. A later definition of a key replaces an earlier one.

    Raises:
        SearchSpaceError: naming the parameter, on bad grammar or bounds.
    """
    entries: list[tuple[str, str, str]] = []  # (origin label, override line, text)
    for key, val in (params or {}).items():
        text = str(val) if not isinstance(val, bool) else ("true" if val else "false")
        entries.append((f"hydra.sweeper.params[{key!r}]", f"{key}={text}", text))
    for arg in arguments:
        entries.append((f"command-line override {arg!r}", arg, arg.split("=", 1)[-1]))

    space: dict[str, SearchParam] = {}
    fixed: dict[str, str] = {}
    for origin, line, text in entries:
        try:
            override = _parser().parse_override(line)
        except Exception as e:
            raise SearchSpaceError(f"{origin}: cannot parse {line!r}: {e}") from e
        name = _key_name(override)
        if override.is_sweep_override():
            if isinstance(override.value(), Glob):
                raise SearchSpaceError(f"{name}={text}: glob() is not supported by Optuna")
            try:
                space[name] = _distribution_from_override(name, text, override)
            except SearchSpaceError:
                raise
            except Exception as e:
                raise SearchSpaceError(f"{name}={text}: {type(e).__name__}: {e}") from e
            fixed.pop(name, None)
        else:
            fixed[name] = override.input_line or line
            space.pop(name, None)
    return space, list(fixed.values())


# --------------------------------------------------------------------------- the sweeper
def _container(cfg: Any) -> Any:
    if isinstance(cfg, DictConfig | ListConfig):
        return OmegaConf.to_container(cfg, resolve=True)
    return cfg


class OptunaSweeper(Sweeper):
    """Optuna hyperparameter search as a Hydra Sweeper (see module docstring)."""

    def __init__(
        self,
        sampler: Any = None,
        pruner: Any = None,
        direction: Any = "minimize",
        storage: str | None = None,
        study_name: str | None = None,
        n_trials: int = 20,
        n_jobs: int = 1,
        timeout: float | None = None,
        seeds_per_trial: int = 1,
        aggregate: str = "mean",
        params: Any = None,
        custom_search_space: str | None = None,
        mlflow: bool = True,
        plots: bool = True,
    ) -> None:
        self.sampler_cfg: dict[str, Any] | None = _container(sampler)
        self.pruner_cfg: dict[str, Any] | None = _container(pruner)
        self.direction = _container(direction)
        self.storage = storage
        self.study_name = study_name
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.timeout = timeout
        self.seeds_per_trial = seeds_per_trial
        self.aggregate = aggregate
        self.params = _container(params) or {}
        self.custom_search_space = custom_search_space
        self.use_mlflow = mlflow
        self.plots = plots
        self.config: DictConfig | None = None
        self.hydra_context: HydraContext | None = None
        self.launcher: Any = None
        self.job_idx = 0

    # ------------------------------------------------------------------ Hydra API
    def setup(
        self,
        *,
        hydra_context: HydraContext,
        task_function: TaskFunction,
        config: DictConfig,
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )
        self.sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()

    def sweep(self, arguments: list[str]) -> Any:
        import optuna

        assert self.config is not None and self.launcher is not None
        # ---- 1. validate everything before touching the storage
        directions = self._directions()
        n_trials, n_jobs, seeds = self._counts()
        how = self._aggregate()
        space, fixed = parse_search_space(self.params, arguments)
        if seeds > 1:
            if "seed" in space:
                raise SearchSpaceError("seed: cannot be searched when seeds_per_trial > 1")
            fixed = [f for f in fixed if _parser().parse_override(f).key_or_group != "seed"]
        custom_fn = self._custom_search_space()
        pruner = self._build_pruner(multi=len(directions) > 1)
        sampler_cls = self._sampler_class()
        grid_space: dict[str, list[Any]] | None = None
        if issubclass(sampler_cls, optuna.samplers.GridSampler):
            grid_space = {name: p.grid_values() for name, p in space.items()}
            if not grid_space:
                raise SearchSpaceError("the grid sampler needs a non-empty hydra.sweeper.params")
            size = math.prod(len(v) for v in grid_space.values())
            if size < n_trials:
                log.info(f"Grid of {size} points: n_trials {n_trials} -> {size}")
                n_trials = size
        has_mlflow_node = isinstance(OmegaConf.select(self.config, "mlflow"), DictConfig)
        self._validate_composition(space, fixed, seeds, has_mlflow_node)

        # ---- 2. open / resume the study
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        storage_spec = self._storage_spec()
        job_storage_spec = self._job_storage_spec(storage_spec)
        storage = open_storage(storage_spec)
        study_name = self.study_name or str(self.config.hydra.job.name)
        study = optuna.create_study(
            storage=storage,
            study_name=study_name,
            directions=[optuna.study.StudyDirection[d.upper()] for d in directions],
            sampler=optuna.samplers.RandomSampler(),
            pruner=pruner,
            load_if_exists=True,
        )
        got = [d.name.lower() for d in study.directions]
        if got != directions:
            raise SweeperConfigError(
                f"study {study_name!r} in {_safe_storage(storage_spec)} has directions {got}, "
                f"but hydra.sweeper.direction is {directions}"
            )
        self._storage = storage
        self._study_id = storage.get_study_id_from_name(study.study_name)
        self._fail_stale_trials(study)
        n_existing = len(study.trials)
        study.sampler = self._build_sampler(sampler_cls, n_existing, grid_space)
        self._record_study_attrs(study, space, fixed, arguments, storage_spec, directions)
        storage.set_study_system_attr(self._study_id, ATTR_PRUNER, self.pruner_cfg)
        self.job_idx = self._next_job_idx(study)
        n_finished = self._n_finished(study)
        log.info(
            f"Optuna study {study_name!r} in {_safe_storage(storage_spec)}: "
            f"{n_finished}/{n_trials} trials finished" + (" (resumed)" if n_existing else "")
        )
        log.info(
            f"Sampler: {type(study.sampler).__name__}, pruner: {type(pruner).__name__}, "
            f"directions: {directions}, n_jobs: {n_jobs}, seeds_per_trial: {seeds}"
        )
        for p in space.values():
            log.info(f"  {p.prefix}{p.name}: {p.text}")

        tracker = self._start_parent_run(study, study_name, space, storage_spec, directions)
        parent_override = (
            [f"++mlflow.parent_run_id={tracker.run_id}"]
            if tracker is not None and has_mlflow_node
            else []
        )
        status = "FAILED"
        try:
            self._optimize(
                study,
                space,
                fixed,
                custom_fn,
                directions,
                n_trials,
                n_jobs,
                seeds,
                how,
                job_storage_spec,
                parent_override,
                tracker,
            )
            status = "FINISHED"
        except KeyboardInterrupt:
            status = "KILLED"
            raise
        finally:
            self._finalize(study, space, storage_spec, directions, tracker, status)
        return study

    # ------------------------------------------------------------------ validation
    def _directions(self) -> list[str]:
        d = self.direction
        items = list(d) if isinstance(d, list | tuple) else [d]
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

    def _counts(self) -> tuple[int, int, int]:
        for key in ("n_trials", "n_jobs", "seeds_per_trial"):
            v = getattr(self, key)
            low = 0 if key == "n_trials" else 1
            if not isinstance(v, int) or isinstance(v, bool) or v < low:
                raise SweeperConfigError(f"hydra.sweeper.{key}={v!r}: expected an integer >= {low}")
        if self.timeout is not None and not self.timeout > 0:
            raise SweeperConfigError(f"hydra.sweeper.timeout={self.timeout!r}: expected > 0")
        return self.n_trials, self.n_jobs, self.seeds_per_trial

    def _aggregate(self) -> str:
        try:
            return check_aggregate(self.aggregate)
        except ValueError as e:
            raise SweeperConfigError(str(e)) from None

    def _custom_search_space(self) -> Callable[..., Any] | None:
        if not self.custom_search_space:
            return None
        try:
            fn = locate(self.custom_search_space)
        except Exception as e:
            raise SweeperConfigError(
                f"hydra.sweeper.custom_search_space={self.custom_search_space!r}: {e}"
            ) from e
        if not callable(fn):
            raise SweeperConfigError(
                f"hydra.sweeper.custom_search_space={self.custom_search_space!r} is not callable"
            )
        return fn

    def _sampler_class(self) -> type:
        import optuna

        cfg = self.sampler_cfg or {"_target_": "optuna.samplers.TPESampler"}
        target = cfg.get("_target_")
        try:
            cls = locate(str(target))
        except Exception as e:
            raise SweeperConfigError(f"hydra.sweeper.sampler._target_={target!r}: {e}") from e
        if not (isinstance(cls, type) and issubclass(cls, optuna.samplers.BaseSampler)):
            raise SweeperConfigError(
                f"hydra.sweeper.sampler._target_={target!r} is not an Optuna sampler class"
            )
        return cls

    def _build_sampler(
        self, cls: type, n_existing: int, grid_space: dict[str, list[Any]] | None
    ) -> optuna.samplers.BaseSampler:
        kwargs = _accepted_kwargs(cls, self.sampler_cfg or {}, "hydra.sweeper.sampler")
        if kwargs.get("seed") is None:
            assert self.config is not None  # set by setup()
            base = OmegaConf.select(self.config, "seed", default=0)
            base = base if isinstance(base, int) else 0
            # a resumed study must not replay the samples of its first invocation
            kwargs["seed"] = base + n_existing
        if grid_space is not None:
            kwargs["search_space"] = grid_space
        try:
            return cls(**kwargs)
        except Exception as e:
            raise SweeperConfigError(f"hydra.sweeper.sampler ({cls.__name__}): {e}") from e

    def _build_pruner(self, multi: bool) -> optuna.pruners.BasePruner:
        import optuna

        cfg = self.pruner_cfg
        if not cfg or not cfg.get("_target_"):
            self.pruner_cfg = None
            return optuna.pruners.NopPruner()
        target = cfg["_target_"]
        try:
            cls = locate(str(target))
        except Exception as e:
            raise SweeperConfigError(f"hydra.sweeper.pruner._target_={target!r}: {e}") from e
        if not (isinstance(cls, type) and issubclass(cls, optuna.pruners.BasePruner)):
            raise SweeperConfigError(
                f"hydra.sweeper.pruner._target_={target!r} is not an Optuna pruner class"
            )
        kwargs = _accepted_kwargs(cls, cfg, "hydra.sweeper.pruner")
        # what the jobs' reporters instantiate (see reporter.TrialReporter.study)
        self.pruner_cfg = {"_target_": target, **kwargs}
        try:
            pruner = instantiate_target(self.pruner_cfg)
        except Exception as e:
            raise SweeperConfigError(f"hydra.sweeper.pruner ({target!r}): {e}") from e
        if multi and not isinstance(pruner, optuna.pruners.NopPruner):
            log.warning("Optuna cannot prune multi-objective studies: the pruner is not used")
        return pruner

    def _trial_node_overrides(self, storage: str, study: str, number: int, k: int) -> list[str]:
        return [
            f"++trial.storage={_quote(storage)}",
            f"++trial.study_name={_quote(study)}",
            f"++trial.number={number}",
            f"++trial.seed_index={k}",
        ]

    def _validate_composition(
        self, space: dict[str, SearchParam], fixed: list[str], seeds: int, has_mlflow: bool
    ) -> None:
        """Check that the overrides compose (a typo in a key fails here, not in every trial)."""
        extra = self._trial_node_overrides("/validation", "validation", 0, 0)
        if seeds > 1:
            extra.append("++seed=0")
        if has_mlflow and self.use_mlflow:
            extra.append("++mlflow.parent_run_id=validation")
        first = {name: p.override(p.example_values()[0]) for name, p in space.items()}
        batches = [[*fixed, *first.values(), *extra]]
        for name, p in space.items():
            for v in p.example_values()[1:]:
                batches.append([*fixed, *{**first, name: p.override(v)}.values(), *extra])
        try:
            self.validate_batch_is_legal(batches)
            return
        except Exception as e:
            combined = e
        try:
            self.validate_batch_is_legal([[*fixed, *extra]])
        except Exception as e:
            raise SweeperConfigError(
                f"the app config does not accept the sweeper's overrides {extra}: {e}"
            ) from e
        for name, p in space.items():  # find the culprit
            for v in p.example_values():
                try:
                    self.validate_batch_is_legal([[*fixed, p.override(v), *extra]])
                except Exception as e:
                    raise SearchSpaceError(
                        f"{name}={p.text}: the override {p.override(v)!r} does not compose: {e}"
                    ) from e
        raise SearchSpaceError(
            f"the search space overrides do not compose: {combined}"
        ) from combined

    # ------------------------------------------------------------------ storage
    def _storage_spec(self) -> str:
        s = self.storage
        if not s:
            return str(self.sweep_dir / JOURNAL_FILE)
        s = str(s)
        if "://" in s:
            prefix = "sqlite:///"
            rest = s[len(prefix) :]
            if s.startswith(prefix) and rest and not rest.startswith("/") and rest != ":memory:":
                return prefix + str(Path(rest).absolute())  # jobs may run in another cwd
            return s
        path = s[len("journal:") :] if s.startswith("journal:") else s
        p = Path(path).expanduser().absolute()
        p.parent.mkdir(parents=True, exist_ok=True)
        return str(p)

    def _job_storage_spec(self, spec: str) -> str:
        """Pass ``${oc.env:...}`` storages unresolved so that secrets stay out of job overrides."""
        try:
            raw = OmegaConf.to_container(self.config.hydra.sweeper, resolve=False).get("storage")  # type: ignore[union-attr]
        except Exception:
            raw = None
        if isinstance(raw, str) and raw.strip().startswith("${oc.env:") and "://" in spec:
            return raw
        return spec

    # ------------------------------------------------------------------ study bookkeeping
    @staticmethod
    def _n_finished(study: optuna.Study) -> int:
        from optuna.trial import TrialState

        n = 0
        for t in study.get_trials(deepcopy=False):
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
                t.state == TrialState.FAIL and not t.user_attrs.get("interrupted")
            ):
                n += 1
        return n

    @staticmethod
    def _next_job_idx(study: optuna.Study) -> int:
        nums = [
            n
            for t in study.get_trials(deepcopy=False)
            for n in (t.system_attrs.get(ATTR_JOB_NUMS) or [])
        ]
        return max(nums) + 1 if nums else 0

    def _trial_id(self, number: int) -> int:
        return self._storage.get_trial_id_from_study_id_trial_number(self._study_id, number)

    @staticmethod
    def _owner() -> dict[str, Any]:
        return {"host": socket.gethostname(), "pid": os.getpid()}

    def _fail_stale_trials(self, study: optuna.Study) -> None:
        """Trials left RUNNING by a dead sweeper on this host: FAIL, flagged interrupted."""
        from optuna.trial import TrialState

        me = self._owner()
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            owner = t.system_attrs.get(ATTR_OWNER) or {}
            if owner.get("host") != me["host"] or not owner.get("pid"):
                continue
            if owner["pid"] != me["pid"] and _pid_alive(int(owner["pid"])):
                continue
            self._fail(study, t.number, "interrupted: its sweeper process died", interrupted=True)

    def _fail(self, study: optuna.Study, number: int, reason: str, interrupted: bool) -> None:
        import optuna

        tid = self._trial_id(number)
        self._storage.set_trial_user_attr(tid, "fail_reason", reason[:4000])
        if interrupted:
            self._storage.set_trial_user_attr(tid, "interrupted", True)
        try:
            study.tell(number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
        except Exception as e:  # never mask the original problem
            log.warning(f"could not mark trial {number} FAIL: {e}")

    def _record_study_attrs(
        self,
        study: optuna.Study,
        space: dict[str, SearchParam],
        fixed: list[str],
        arguments: list[str],
        storage_spec: str,
        directions: list[str],
    ) -> None:
        assert self.config is not None
        cmd = _command_line()
        base = OmegaConf.create(OmegaConf.to_container(self.config, resolve=False))
        assert isinstance(base, DictConfig)
        with open_dict(base):
            base.pop("hydra", None)
        try:
            base_yaml = OmegaConf.to_yaml(base, resolve=True)
        except Exception:
            base_yaml = OmegaConf.to_yaml(base, resolve=False)
        history = list(study.user_attrs.get("invocations", []))
        history.append({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "command_line": cmd})
        attrs = {
            "command_line": cmd,
            "overrides": list(arguments),
            "hydra_overrides": list(self.config.hydra.overrides.hydra),
            "base_config": base_yaml,
            "search_space": {f"{p.prefix}{p.name}": p.text for p in space.values()},
            "fixed_overrides": fixed,
            "sweeper": {
                "direction": directions,
                "n_trials": self.n_trials,
                "n_jobs": self.n_jobs,
                "timeout": self.timeout,
                "seeds_per_trial": self.seeds_per_trial,
                "aggregate": self.aggregate,
                "sampler": self.sampler_cfg,
                "pruner": self.pruner_cfg,
                "custom_search_space": self.custom_search_space,
            },
            "sweep_dir": str(self.sweep_dir),
            "storage": _safe_storage(storage_spec),
            "invocations": history[-50:],
        }
        for k, v in attrs.items():
            study.set_user_attr(k, v)

    # ------------------------------------------------------------------ the loop
    def _optimize(
        self,
        study: optuna.Study,
        space: dict[str, SearchParam],
        fixed: list[str],
        custom_fn: Callable[..., Any] | None,
        directions: list[str],
        n_trials: int,
        n_jobs: int,
        seeds: int,
        how: str,
        storage_spec: str,
        parent_override: list[str],
        tracker: Any,
    ) -> None:
        distributions = {name: p.distribution for name, p in space.items()}
        assert self.config is not None  # set by setup()
        base_seed = OmegaConf.select(self.config, "seed", default=0)
        base_seed = base_seed if isinstance(base_seed, int) else 0
        start = time.monotonic()
        first = True
        while True:
            remaining = n_trials - self._n_finished(study)
            if remaining <= 0:
                break
            if not first and self.timeout is not None and time.monotonic() - start >= self.timeout:
                log.info(f"Timeout of {self.timeout}s reached: no new trials")
                break
            first = False
            batch = min(n_jobs, remaining)
            trials: list[optuna.Trial] = []
            job_overrides: list[list[str]] = []
            try:
                for _ in range(batch):
                    trial = study.ask(fixed_distributions=distributions)
                    trials.append(trial)
                    searched = self._searched_overrides(trial, space, custom_fn)
                    trial.set_user_attr("overrides", searched)
                    sys_attrs: dict[str, Any] = {
                        ATTR_OWNER: self._owner(),
                        ATTR_SEEDS: seeds,
                        ATTR_AGGREGATE: how,
                        ATTR_JOB_NUMS: list(
                            range(
                                self.job_idx + len(job_overrides),
                                self.job_idx + len(job_overrides) + seeds,
                            )
                        ),
                    }
                    tid = self._trial_id(trial.number)
                    for attr, value in sys_attrs.items():
                        self._storage.set_trial_system_attr(tid, attr, value)
                    if seeds > 1:
                        trial.set_user_attr("seeds", [base_seed + k for k in range(seeds)])
                    for k in range(seeds):
                        job_overrides.append(
                            [
                                *fixed,
                                *searched,
                                *([f"++seed={base_seed + k}"] if seeds > 1 else []),
                                *self._trial_node_overrides(
                                    storage_spec, study.study_name, trial.number, k
                                ),
                                *parent_override,
                            ]
                        )
                returns = self.launcher.launch(job_overrides, initial_job_idx=self.job_idx)
            except BaseException as e:
                reason = f"interrupted: {type(e).__name__}: {e}"
                for t in trials:
                    self._fail(study, t.number, reason, interrupted=True)
                raise
            self.job_idx += len(job_overrides)
            for i, trial in enumerate(trials):
                self._tell(
                    study, trial, list(returns[i * seeds : (i + 1) * seeds]), directions, how
                )
            self._write_results(study, space, directions, None)
            if tracker is not None:
                self._log_progress(study, tracker, directions)

    def _searched_overrides(
        self,
        trial: optuna.Trial,
        space: dict[str, SearchParam],
        custom_fn: Callable[..., Any] | None,
    ) -> list[str]:
        out = [space[name].override(trial.params[name]) for name in space]
        if custom_fn is None:
            return out
        extra = custom_fn(self.config, trial)
        if extra is None:
            out += [f"{k}={format_value(v)}" for k, v in trial.params.items() if k not in space]
        elif isinstance(extra, Mapping):
            out += [f"{k}={format_value(v)}" for k, v in extra.items()]
        elif isinstance(extra, Sequence) and not isinstance(extra, str):
            out += [str(x) for x in extra]
        else:
            raise TypeError(
                f"custom_search_space {self.custom_search_space} returned {type(extra).__name__}; "
                "expected None, a dict {key: value} or a list of overrides"
            )
        return out

    def _tell(
        self,
        study: optuna.Study,
        trial: optuna.Trial,
        returns: list[JobReturn],
        directions: list[str],
        how: str,
    ) -> None:
        import optuna
        from optuna.trial import TrialState

        n_obj = len(directions)
        failure: str | None = None
        pruned: BaseException | None = None
        per_seed: list[list[float]] = []
        dirs = [d for d in map(_output_dir, returns) if d]
        if dirs:
            trial.set_user_attr("job_dirs", dirs)
        for k, ret in enumerate(returns):
            who = f"seed-job {k}: " if len(returns) > 1 else ""
            if ret.status == JobStatus.COMPLETED:
                try:
                    per_seed.append(_objective_values(ret._return_value, n_obj))
                except ValueError as e:
                    failure = failure or f"{who}{e}"
                continue
            exc = ret._return_value
            if isinstance(exc, optuna.TrialPruned):
                pruned = pruned or exc
                continue
            failure = failure or f"{who}{type(exc).__name__}: {exc}"
            log.warning(
                f"Trial {trial.number} {who}failed: {type(exc).__name__}: {exc}",
                exc_info=(type(exc), exc, exc.__traceback__)
                if isinstance(exc, BaseException)
                else None,
            )
        if len(returns) > 1 and per_seed:
            trial.set_user_attr("seed_values", [v[0] if n_obj == 1 else v for v in per_seed])
        try:
            if failure is not None:
                trial.set_user_attr("fail_reason", failure[:4000])
                study.tell(trial, state=TrialState.FAIL)
            elif pruned is not None:
                trial.set_user_attr("pruned_reason", str(pruned)[:4000])
                study.tell(trial, state=TrialState.PRUNED)
            else:
                values = [aggregate([v[j] for v in per_seed], how) for j in range(n_obj)]
                study.tell(trial, values[0] if n_obj == 1 else values)
        except RuntimeError as e:
            if "Study.stop" not in str(e):  # GridSampler asks to stop once the grid is done
                raise
        done = self._storage.get_trial(self._trial_id(trial.number))
        shown = done.values if done.values is None or n_obj > 1 else done.values[0]
        msg = f"Trial {trial.number} {done.state.name}: value {shown}"
        if failure is not None:
            msg += f" ({failure})"
        log.info(f"{msg}; {' '.join(done.user_attrs.get('overrides', []))}")

    # ------------------------------------------------------------------ results
    def _write_results(
        self,
        study: optuna.Study,
        space: dict[str, SearchParam],
        directions: list[str],
        plots: list[Path] | None,
    ) -> dict[str, Any]:
        import yaml
        from optuna.trial import TrialState

        trials = study.get_trials(deepcopy=False)
        counts = {s.name: sum(t.state == s for t in trials) for s in TrialState}
        counts = {k: v for k, v in counts.items() if v}
        interrupted = sum(bool(t.user_attrs.get("interrupted")) for t in trials)
        res: dict[str, Any] = {
            "name": "optuna",
            "study_name": study.study_name,
            "storage": _safe_storage(self._storage_spec()),
            "direction": directions[0] if len(directions) == 1 else directions,
            "n_trials": counts,
        }
        if interrupted:
            res["n_interrupted"] = interrupted
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        if not complete:
            res["best_params"] = None
            res["best_value"] = None
        elif len(directions) == 1:
            best = study.best_trial
            res["best_trial"] = best.number
            res["best_value"] = best.value
            res["best_params"] = dict(best.params)
            overrides = list(best.user_attrs.get("overrides", []))
            res["best_overrides"] = overrides
            res["best_config"] = self._overrides_to_config(overrides)
            if "seed_values" in best.user_attrs:
                res["best_seed_values"] = best.user_attrs["seed_values"]
        else:
            res["best_trials"] = [
                {
                    "number": t.number,
                    "values": list(t.values),
                    "params": dict(t.params),
                    "overrides": list(t.user_attrs.get("overrides", [])),
                }
                for t in study.best_trials
            ]
        if plots:
            res["plots"] = [p.name for p in plots]
        path = self.sweep_dir / RESULTS_FILE
        text = (
            "# Best parameters of the Optuna study (rl8 optuna sweeper).\n"
            "# best_config can be pasted into an experiment (# @package _global_);\n"
            "# best_overrides onto the command line.\n"
        ) + yaml.safe_dump(_plain(res), sort_keys=False, default_flow_style=False)
        path.write_text(text)
        return res

    def _overrides_to_config(self, overrides: list[str]) -> dict[str, Any]:
        assert self.config is not None  # set by setup()
        choices = OmegaConf.select(self.config, "hydra.runtime.choices", default=None)
        groups = set(choices.keys()) if choices is not None else set()
        cfg: dict[str, Any] = {}
        defaults: list[dict[str, Any]] = []
        for line in overrides:
            try:
                o = _parser().parse_override(line)
            except Exception:
                continue
            key = o.key_or_group
            if o.is_delete() or o.is_sweep_override():
                continue
            value = o.value()
            if key in groups or o.package is not None:
                defaults.append({f"override /{_key_name(o)}": value})
                continue
            node = cfg
            parts = key.split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = value
        return {"defaults": defaults, **cfg} if defaults else cfg

    def _save_plots(self, study: optuna.Study, directions: list[str]) -> list[Path]:
        from optuna.trial import TrialState

        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not complete:
            return []
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            from optuna.visualization import matplotlib as ovm
        except Exception as e:
            log.warning(f"No plots (matplotlib unavailable: {e})")
            return []
        saved: list[Path] = []

        def save(name: str, fn: Callable[[], Any]) -> None:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    ax = fn()
                fig = ax.flat[0].figure if hasattr(ax, "flat") else ax.figure
                path = self.sweep_dir / name
                fig.savefig(path, dpi=100, bbox_inches="tight")
                plt.close(fig)
                saved.append(path)
            except Exception as e:
                log.warning(f"Could not plot {name}: {type(e).__name__}: {e}")
                plt.close("all")

        n_params = len({k for t in complete for k in t.params})
        if len(directions) == 1:
            save("optimization_history.png", lambda: ovm.plot_optimization_history(study))
            if len(complete) >= 2 and n_params >= 2:
                save("param_importances.png", lambda: ovm.plot_param_importances(study))
        else:

            def history(i: int) -> Callable[[], Any]:
                return lambda: ovm.plot_optimization_history(
                    study, target=lambda t: t.values[i], target_name=f"objective {i}"
                )

            for i in range(len(directions)):
                save(f"optimization_history_{i}.png", history(i))
            if len(directions) in (2, 3):
                save("pareto_front.png", lambda: ovm.plot_pareto_front(study))
            if len(complete) >= 2 and n_params >= 2:
                save(
                    "param_importances.png",
                    lambda: ovm.plot_param_importances(
                        study, target=lambda t: t.values[0], target_name="objective 0"
                    ),
                )
        return saved

    def _finalize(
        self,
        study: optuna.Study,
        space: dict[str, SearchParam],
        storage_spec: str,
        directions: list[str],
        tracker: Any,
        status: str,
    ) -> None:
        plots: list[Path] = []
        if self.plots and status == "FINISHED":
            plots = self._save_plots(study, directions)
        try:
            res = self._write_results(study, space, directions, plots)
        except Exception as e:
            log.warning(f"Could not write {RESULTS_FILE}: {e}")
            res = {}
        if status == "FINISHED":
            if res.get("best_params") is not None:
                log.info(f"Best value {res['best_value']} (trial {res['best_trial']})")
                log.info("Best overrides: " + " ".join(res.get("best_overrides", [])))
            log.info(f"Results: {self.sweep_dir / RESULTS_FILE}")
        if tracker is None:
            return
        try:
            self._log_progress(study, tracker, directions)
            if res.get("best_params"):
                tracker.log_params({f"best.{k}": v for k, v in res["best_params"].items()})
                tracker.set_tags({"rl8.optuna.best_trial": res.get("best_trial")})
            for p in [self.sweep_dir / RESULTS_FILE, *plots]:
                if p.exists():
                    tracker.log_artifact(p)
            tracker.close(status)
        except Exception as e:
            log.warning(f"MLflow parent run: {type(e).__name__}: {e}")

    # ------------------------------------------------------------------ MLflow
    def _start_parent_run(
        self,
        study: optuna.Study,
        study_name: str,
        space: dict[str, SearchParam],
        storage_spec: str,
        directions: list[str],
    ) -> Any:
        assert self.config is not None  # set by setup()
        node = OmegaConf.select(self.config, "mlflow")
        if not self.use_mlflow or not isinstance(node, DictConfig):
            return None
        if node.get("enabled", True) is False:  # the app logs nothing either
            return None
        try:
            from rl8.tracking import MlflowTracker

            tracker = MlflowTracker(
                tracking_uri=node.get("tracking_uri"),
                experiment_name=node.get("experiment_name"),
                run_name=f"optuna:{study_name}",
                tags={
                    "rl8.optuna.study_name": study_name,
                    "rl8.optuna.storage": _safe_storage(storage_spec),
                    "rl8.optuna.sweep_dir": str(self.sweep_dir),
                    "rl8.role": "sweep",
                },
            )
            tracker.log_params(
                {
                    "sweeper.direction": ",".join(directions),
                    "sweeper.n_trials": self.n_trials,
                    "sweeper.n_jobs": self.n_jobs,
                    "sweeper.seeds_per_trial": self.seeds_per_trial,
                    "sweeper.aggregate": self.aggregate,
                    "sweeper.sampler": (self.sampler_cfg or {}).get("_target_"),
                    "sweeper.pruner": (self.pruner_cfg or {}).get("_target_"),
                    **{f"space.{p.prefix}{p.name}": p.text for p in space.values()},
                }
            )
            runs = list(study.user_attrs.get("mlflow_parent_run_ids", []))
            study.set_user_attr("mlflow_parent_run_ids", [*runs, tracker.run_id][-50:])
            log.info(f"MLflow parent run {tracker.run_id}")
            return tracker
        except Exception as e:
            log.warning(f"No MLflow parent run ({type(e).__name__}: {e})")
            return None

    def _log_progress(self, study: optuna.Study, tracker: Any, directions: list[str]) -> None:
        from optuna.trial import TrialState

        trials = study.get_trials(deepcopy=False)
        done = [t for t in trials if t.state.is_finished()]
        metrics: dict[str, float] = {
            "trials/complete": sum(t.state == TrialState.COMPLETE for t in trials),
            "trials/pruned": sum(t.state == TrialState.PRUNED for t in trials),
            "trials/fail": sum(t.state == TrialState.FAIL for t in trials),
        }
        if len(directions) == 1 and metrics["trials/complete"]:
            metrics["best_value"] = study.best_value
        tracker.log_metrics(metrics, step=len(done))


# --------------------------------------------------------------------------- helpers
def _accepted_kwargs(cls: type, cfg: Mapping[str, Any], key: str) -> dict[str, Any]:
    """``cfg`` minus ``_target_``, minus (with a warning) the keys ``cls`` does not take.

    Lets ``hydra.sweeper.sampler._target_=optuna.samplers.RandomSampler`` work on top
    of the TPE defaults, and an experiment's pruner settings survive a pruner switch.
    """
    import inspect

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


def _plain(x: Any) -> Any:
    """Make a value safe for yaml.safe_dump."""
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if isinstance(x, bool | int | str) or x is None:
        return x
    if isinstance(x, float):
        return x
    try:
        return float(x)
    except (TypeError, ValueError):
        return str(x)


def _safe_storage(spec: str) -> str:
    """Hide a password in an RDB URL."""
    if "://" in spec and "@" in spec:
        scheme, rest = spec.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        if ":" in creds:
            creds = creds.split(":", 1)[0] + ":***"
        return f"{scheme}://{creds}@{host}"
    return spec


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _command_line() -> str:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    argv = list(sys.argv)
    head = ["python", "-m", spec.name] if spec is not None and spec.name else ["python", argv[0]]
    return shlex.join([*head, *argv[1:]])
