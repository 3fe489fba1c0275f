"""Job side of rl8's Optuna sweeper: report evaluations to the trial, prune early.

The sweeper runs every trial as one or more Hydra jobs and passes each job the
overrides ``++trial.storage=... ++trial.study_name=... ++trial.number=N
++trial.seed_index=K``. The app turns that node into a reporter::

    reporter = TrialReporter.from_config(cfg.trial)   # None outside a sweep
    ...
    if reporter is not None:
        reporter.report(value, step)                  # may raise optuna.TrialPruned

The reporter reconnects to the study's storage (so it works in the sweeper's
process and in the worker processes of e.g. the joblib launcher), writes the
trial's intermediate value at ``step`` and asks the study's pruner whether to
stop. With ``seeds_per_trial > 1`` every seed-job of a trial first records its
own value as the trial system attribute ``rl8:seed{K}:step{N}``; the trial's
intermediate value at step N is the aggregate (``hydra.sweeper.aggregate``) of
the seed values recorded so far at that step, so the pruner always sees one
number per step. Once one seed-job is pruned, the trial is pruned: the other
seed-jobs of that trial raise ``optuna.TrialPruned`` at their next report.

Storage specification strings (:func:`open_storage`): an RDB URL
(``sqlite:///...``, ``postgresql://...``, ``mysql+pymysql://...``), ``redis://...``
(journal on Redis), ``journal:PATH`` or any other string (a journal file path).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hydra.utils import get_object

if TYPE_CHECKING:
    import optuna

__all__ = [
    "TrialReporter",
    "aggregate",
    "check_aggregate",
    "locate",
    "open_storage",
]

# system attribute keys shared by the sweeper and the reporter
ATTR_PRUNER = "rl8:pruner"  # study: {"_target_": ..., **kwargs} or None
ATTR_SEEDS = "rl8:seeds_per_trial"  # trial: int
ATTR_AGGREGATE = "rl8:aggregate"  # trial: str
ATTR_PRUNED = "rl8:pruned"  # trial: {"seed_index": k, "step": n}


def seed_step_key(seed_index: int, step: int) -> str:
    return f"rl8:seed{int(seed_index)}:step{int(step)}"


# --------------------------------------------------------------------------- helpers
def check_aggregate(how: str) -> str:
    """Validate an aggregate name (mean, median, min, max, qNN with 0 <= NN <= 100)."""
    how = str(how).strip().lower()
    if how in ("mean", "median", "min", "max"):
        return how
    if how.startswith("q"):
        try:
            q = float(how[1:])
        except ValueError:
            q = -1.0
        if 0.0 <= q <= 100.0:
            return how
    raise ValueError(
        f"hydra.sweeper.aggregate={how!r}: expected mean, median, min, max or qNN "
        "(NN-th percentile, e.g. q25)"
    )


def _percentile(values: Sequence[float], q: float) -> float:
    xs = sorted(values)
    pos = q / 100.0 * (len(xs) - 1)
    lo = math.floor(pos)
    hi = math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def aggregate(values: Sequence[float], how: str = "mean") -> float:
    """Combine the per-seed values of a trial (NaN propagates)."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("no values to aggregate")
    if any(math.isnan(v) for v in vals):
        return math.nan
    how = check_aggregate(how)
    if how == "mean":
        return math.fsum(vals) / len(vals)
    if how == "min":
        return min(vals)
    if how == "max":
        return max(vals)
    if how == "median":
        return _percentile(vals, 50.0)
    return _percentile(vals, float(how[1:]))


def locate(path: str) -> Any:
    """Import ``package.module.attr`` (Hydra's ``_target_`` lookup, :func:`hydra.utils.get_object`)."""
    return get_object(path)


def instantiate_target(cfg: Mapping[str, Any], **extra: Any) -> Any:
    """``locate(cfg["_target_"])(**rest, **extra)``."""
    kwargs = {k: v for k, v in cfg.items() if k != "_target_"}
    kwargs.update(extra)
    return locate(cfg["_target_"])(**kwargs)


def pruner_from_storage(cfg: Mapping[str, Any]) -> Any:
    """The pruner a study's storage describes (``{"_target_": ..., **kwargs}``).

    A study storage may be writable by others (a shared database), so what it
    says is not trusted: the target must be a ``BasePruner`` class that is one
    of Optuna's (``optuna.pruners.*``) or the one this job's own sweeper
    config names (``hydra.sweeper.pruner``), and its arguments plain values.

    Raises:
        ValueError: Anything else, naming it.
    """
    import optuna

    target = cfg.get("_target_")
    obj = None
    if isinstance(target, str) and (
        target.startswith("optuna.pruners.") or target == _own_pruner_target()
    ):
        try:
            obj = locate(target)
        except Exception:
            obj = None
    if not (isinstance(obj, type) and issubclass(obj, optuna.pruners.BasePruner)):
        raise ValueError(
            f"the study's storage names the pruner {target!r}, which is not an Optuna "
            "pruner class (optuna.pruners.*); refusing to build it."
        )
    kwargs = {k: v for k, v in cfg.items() if k != "_target_"}
    plain = (str, int, float, bool, type(None))
    if not all(isinstance(v, plain) for v in kwargs.values()):
        raise ValueError(
            f"the study's storage gives the pruner {target} non-plain arguments; refusing it."
        )
    return obj(**kwargs)


def _own_pruner_target() -> str | None:
    """``hydra.sweeper.pruner._target_`` of this job's own Hydra config, if any."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    pruner = HydraConfig.get().sweeper.get("pruner")
    target = pruner.get("_target_") if pruner else None
    return str(target) if target else None


_STORAGES: dict[str, Any] = {}
_STORAGES_LOCK = threading.Lock()


def open_storage(spec: str) -> optuna.storages.BaseStorage:
    """Open (and cache per process) the Optuna storage named by ``spec``."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalRedisBackend

    spec = str(spec)
    with _STORAGES_LOCK:
        if spec in _STORAGES:
            return _STORAGES[spec]
        storage: Any
        if spec.startswith(("redis://", "rediss://", "unix://")):
            storage = optuna.storages.JournalStorage(JournalRedisBackend(spec))
        elif "://" in spec:
            storage = _rdb_storage(spec)
        else:
            path = spec.removeprefix("journal:")
            storage = optuna.storages.JournalStorage(JournalFileBackend(path))
        _STORAGES[spec] = storage
        return storage


def _rdb_storage(url: str) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage for ``url``, created by any number of processes at once.

    The first processes to reach a fresh database all create Optuna's schema, and
    all but one fail on a duplicate table or type: those try again (the schema is
    there by then). A missing database driver is named with its fix.
    """
    import random
    import time

    import optuna
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    engine_kwargs = None
    if url.startswith("sqlite"):
        # parallel jobs write to one file: wait for the lock instead of failing
        engine_kwargs = {"connect_args": {"timeout": 60}}
    for attempt in range(8):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        except (IntegrityError, ProgrammingError):
            if attempt == 7:
                raise
            time.sleep(random.uniform(0.1, 0.5) * (attempt + 1))
        except ModuleNotFoundError as e:
            if url.startswith(("postgresql", "postgres")):
                raise ModuleNotFoundError(
                    f"{e}: postgresql:// storages need psycopg 3 (pip install 'rl8[postgres]')"
                ) from e
            raise
    raise AssertionError("unreachable")


def _cfg_get(cfg: Any, key: str) -> Any:
    if cfg is None:
        return None
    if isinstance(cfg, Mapping):
        return cfg.get(key)
    try:  # DictConfig
        return cfg.get(key)
    except AttributeError:
        return getattr(cfg, key, None)


# --------------------------------------------------------------------------- reporter
class TrialReporter:
    """Reports a job's evaluations to its Optuna trial and applies the study's pruner.

    Args:
        storage: Storage specification (see :func:`open_storage`) or storage object.
        study_name: Name of the study.
        number: Trial number within the study.
        seed_index: Which of the trial's seed-jobs this is (0-based).
    """

    def __init__(
        self,
        storage: str | optuna.storages.BaseStorage,
        study_name: str,
        number: int,
        seed_index: int = 0,
    ) -> None:
        self.storage = open_storage(storage) if isinstance(storage, str) else storage
        self.study_name = str(study_name)
        self.number = int(number)
        self.seed_index = int(seed_index)
        self._study_id = self.storage.get_study_id_from_name(self.study_name)
        self.trial_id = self.storage.get_trial_id_from_study_id_trial_number(
            self._study_id, self.number
        )
        attrs = self.storage.get_trial_system_attrs(self.trial_id)
        self.seeds_per_trial = int(attrs.get(ATTR_SEEDS, 1))
        self.aggregate = check_aggregate(attrs.get(ATTR_AGGREGATE, "mean"))
        self.multi_objective = len(self.storage.get_study_directions(self._study_id)) > 1
        self._study: optuna.Study | None = None
        self.last_step: int | None = None
        self.last_value: float | None = None

    @classmethod
    def from_config(cls, cfg: Any) -> TrialReporter | None:
        """Build from the app's ``trial`` node; ``None`` when not run by the sweeper."""
        storage = _cfg_get(cfg, "storage")
        study_name = _cfg_get(cfg, "study_name")
        number = _cfg_get(cfg, "number")
        if storage is None or study_name is None or number is None:
            return None
        seed_index = _cfg_get(cfg, "seed_index")
        return cls(storage, study_name, int(number), int(seed_index or 0))

    # ------------------------------------------------------------------ study access
    @property
    def study(self) -> optuna.Study:
        """The study, loaded with the pruner the sweeper configured."""
        if self._study is None:
            import optuna

            pruner_cfg = self.storage.get_study_system_attrs(self._study_id).get(ATTR_PRUNER)
            pruner = pruner_from_storage(pruner_cfg) if pruner_cfg else optuna.pruners.NopPruner()
            self._study = optuna.load_study(
                study_name=self.study_name,
                storage=self.storage,
                sampler=optuna.samplers.RandomSampler(),
                pruner=pruner,
            )
        return self._study

    @property
    def params(self) -> dict[str, Any]:
        """The trial's suggested parameters."""
        return dict(self.storage.get_trial_params(self.trial_id))

    def set_user_attr(self, key: str, value: Any) -> None:
        """Attach a JSON-serializable value to the trial (visible in Optuna's tools)."""
        self.storage.set_trial_user_attr(self.trial_id, key, value)

    # ------------------------------------------------------------------ reporting
    def report(self, value: float, step: int) -> None:
        """Record ``value`` at ``step`` and raise ``optuna.TrialPruned`` if the trial should stop.

        ``step`` must be comparable between trials (e.g. the evaluation index or the
        number of trainer steps): pruners compare trials at equal steps.
        """
        import optuna

        value = float(value)
        step = int(step)
        self.last_step = step
        pruned_by_other = None
        if self.seeds_per_trial > 1:
            self.storage.set_trial_system_attr(
                self.trial_id, seed_step_key(self.seed_index, step), value
            )
            attrs = self.storage.get_trial_system_attrs(self.trial_id)
            seen = [
                attrs[k]
                for k in (seed_step_key(i, step) for i in range(self.seeds_per_trial))
                if k in attrs
            ]
            agg = aggregate(seen, self.aggregate)
            pruned_by_other = attrs.get(ATTR_PRUNED)
        else:
            agg = value
        self.last_value = agg
        if self.multi_objective:
            return  # Optuna cannot prune multi-objective studies
        self.storage.set_trial_intermediate_value(self.trial_id, step, agg)
        if pruned_by_other is not None:
            raise optuna.TrialPruned(
                f"trial {self.number} was pruned by its seed-job "
                f"{pruned_by_other.get('seed_index')} at step {pruned_by_other.get('step')}"
            )
        study = self.study
        if study.pruner.prune(study, self.storage.get_trial(self.trial_id)):
            if self.seeds_per_trial > 1:
                self.storage.set_trial_system_attr(
                    self.trial_id, ATTR_PRUNED, {"seed_index": self.seed_index, "step": step}
                )
            raise optuna.TrialPruned(f"trial {self.number} pruned at step {step} (value {agg:g})")

    def __repr__(self) -> str:
        return (
            f"TrialReporter(study_name={self.study_name!r}, number={self.number}, "
            f"seed_index={self.seed_index})"
        )
