"""Trainers: the high-level training interface over one PPO algorithm."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Generic, TypeVar

from ..algorithms import Algorithm, AlgorithmBase, RecurrentAlgorithm
from ..conditions import Condition
from ..env import EnvFactory, close_env
from ..tracking import AUTO, MlflowTracker, TrackerArg, resolve_tracker, unique_run_name

__all__ = ["GenericTrainerBase", "RecurrentTrainer", "Trainer", "TrainerState"]

_Algorithm = TypeVar("_Algorithm", bound=AlgorithmBase)

#: Running totals: ``algorithm/collects``, ``algorithm/steps``, ``env/steps``.
TrainerState = dict[str, int]

_NEVER_RESET_MSG = (
    "An eval env_config was given, but horizons_per_env_reset is -1: the environment "
    "is reset only once, before training, so it would never use that config. Either "
    "drop the eval env_config or set horizons_per_env_reset > 0."
)


class GenericTrainerBase(Generic[_Algorithm]):
    """The base trainer: steps, evaluates and runs one algorithm, and logs
    its stats to MLflow.

    Args:
        algorithm: The PPO algorithm to train.
        tracker: Where hyperparameters (once) and stats (batched, sent about
            once a second) are logged. ``"auto"`` (default): a new MLflow run of
            this trainer's own on MLflow's default store (``MLFLOW_TRACKING_URI``,
            else ``sqlite:///mlflow.db`` in the working directory), named
            ``<Env>-<Model>-<random suffix>``; it is ended by :meth:`close`, or
            at interpreter exit. ``None``: no tracking (MLflow is not even
            imported). An :class:`~rl8.tracking.MlflowTracker`: log into that
            run (the caller closes it).

    Raises:
        TypeError: ``tracker`` is none of the above.
    """

    #: The PPO algorithm: environment, policy, optimizer and hyperparameters.
    algorithm: _Algorithm
    #: Running totals used for logging and for when evaluation is allowed.
    state: TrainerState

    def __init__(self, algorithm: _Algorithm, /, *, tracker: TrackerArg = AUTO) -> None:
        self.algorithm = algorithm
        self.state = {"algorithm/collects": 0, "algorithm/steps": 0, "env/steps": 0}
        #: Names of the stats one collect produces (known after the first
        #: :meth:`step`); :meth:`eval` returns them prefixed ``eval/``.
        self.collect_stat_names: frozenset[str] = frozenset()
        self.tracker, self._owns_tracker = resolve_tracker(tracker, self._run_name)
        if self.tracker is not None:
            self.tracker.log_params(algorithm.params)

    def attach(self, tracker: MlflowTracker, *, log_params: bool = True) -> None:
        """Log into ``tracker`` from now on (its owner closes it), for a trainer
        built with ``tracker=None``; ``log_params``: log the hyperparameters
        (false when continuing a run that has them)."""
        self.tracker, self._owns_tracker = tracker, False
        if log_params:
            tracker.log_params(self.algorithm.params)

    def _run_name(self) -> str:
        env = type(self.algorithm.env).__name__
        model = type(self.algorithm.policy.model).__name__
        return unique_run_name(env, model)

    def close(self, status: str = "FINISHED") -> None:
        """Close the environment (:meth:`rl8.env.Env.close`) and end tracking:
        the run this trainer created (``tracker="auto"``) is flushed and ended
        with ``status`` (``"FINISHED"`` (default), ``"FAILED"`` or
        ``"KILLED"``); a tracker passed in is only flushed and waited for (its
        owner closes it)."""
        close_env(self.algorithm.env)
        if self.tracker is None:
            return
        if self._owns_tracker:
            self.tracker.close(status)
        else:
            self.tracker.wait()

    def __enter__(self) -> GenericTrainerBase[_Algorithm]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Calls :meth:`close`: ``FINISHED``, ``KILLED`` on ``KeyboardInterrupt``,
        else ``FAILED``."""
        if exc_type is None:
            self.close()
        else:
            self.close("KILLED" if issubclass(exc_type, KeyboardInterrupt) else "FAILED")

    def step(self, *, env_config: Mapping[str, Any] | None = None) -> dict[str, float]:
        """Collect one horizon and update the policy once.

        Args:
            env_config: Environment config used when the environment is reset
                during this step (domain randomization schedules pass it here).

        Returns:
            Flat train stats: memory, collect (``returns/*``, ``rewards/*``),
            update (``losses/*``, ``monitors/*``, ``coefficients/*``) and the
            trainer state (``env/steps`` is the running total).
        """
        memory_stats = self.algorithm.memory_stats()
        collect_stats = self.algorithm.collect(env_config=env_config)
        step_stats = self.algorithm.step()
        if not self.collect_stat_names:
            self.collect_stat_names = frozenset(collect_stats)
        self.state["algorithm/collects"] += 1
        self.state["algorithm/steps"] += 1
        self.state["env/steps"] += int(collect_stats["env/steps"])
        stats: dict[str, float] = {**memory_stats, **collect_stats, **step_stats}
        stats.update(self.state)
        if self.tracker is not None:
            self.tracker.log_metrics(stats, step=self.state["env/steps"])
        return stats

    def eval(
        self, *, env_config: Mapping[str, Any] | None = None, deterministic: bool = True
    ) -> dict[str, float]:
        """Collect ``horizons_per_env_reset`` horizons (one when it is -1)
        without learning, and return their mean stats prefixed ``eval/``;
        ``eval/episodes/*`` are over the episodes that ended during the
        evaluation (``eval/episodes/count`` of them, up to ``max(100, num_envs)``).

        Evaluation shares the training environment and buffer, so with
        ``horizons_per_env_reset > 0`` it starts from a fresh reset with
        ``env_config``; with -1 it continues the training environment.

        Raises:
            RuntimeError: Called when the environment is not due for a reset
                (off the ``horizons_per_env_reset`` interval).
            ValueError: An ``env_config`` is given although
                ``horizons_per_env_reset`` is -1 and training has started.
        """
        hper = self.algorithm.horizons_per_env_reset
        if env_config and hper < 0 and self.state["algorithm/collects"]:
            raise ValueError(_NEVER_RESET_MSG)
        if hper > 0 and self.state["algorithm/collects"] % hper:
            raise RuntimeError(
                "Trainer.eval() can only be called every horizons_per_env_reset="
                f"{hper} collects (now at {self.state['algorithm/collects']}), because "
                "evaluation shares the environment and buffer with training."
            )
        stats: dict[str, list[float]] = defaultdict(list)
        self.algorithm.episodes.clear("eval")
        for _ in range(max(1, hper)):
            for k, v in self.algorithm.collect(
                env_config=env_config, deterministic=deterministic, evaluation=True
            ).items():
                stats[k].append(v)
            self.state["algorithm/collects"] += 1
        self.algorithm.state.buffered = False
        # Episode stats are over the evaluation's finished episodes (the last
        # collect's); the others are means over its collects.
        eval_stats = {
            f"eval/{k}": v[-1] if k.startswith("episodes/") else sum(v) / len(v)
            for k, v in stats.items()
        }
        if self.tracker is not None:
            self.tracker.log_metrics(eval_stats, step=self.state["env/steps"])
        return eval_stats

    def run(
        self,
        *,
        env_config: Mapping[str, Any] | None = None,
        eval_env_config: Mapping[str, Any] | None = None,
        steps_per_eval: int | None = None,
        stop_conditions: Sequence[Condition] | None = None,
    ) -> dict[str, float]:
        """Step (and evaluate every ``steps_per_eval`` steps) until any stop
        condition holds; forever without conditions.

        Args:
            env_config: Environment config for training resets.
            eval_env_config: Environment config for evaluations (default:
                ``env_config``).
            steps_per_eval: Steps between evaluations; ``None`` never evaluates.
            stop_conditions: Stop when any returns ``True`` on the train stats.

        Returns:
            The last train stats.

        Raises:
            ValueError: An eval config the environment would never use
                (``horizons_per_env_reset`` is -1), or ``steps_per_eval`` not a
                multiple of ``horizons_per_env_reset``.
        """
        hper = self.algorithm.horizons_per_env_reset
        if steps_per_eval and hper < 0 and eval_env_config:
            raise ValueError(_NEVER_RESET_MSG)
        if steps_per_eval and hper > 0 and steps_per_eval % hper:
            raise ValueError(
                f"steps_per_eval={steps_per_eval} must be a multiple of "
                f"horizons_per_env_reset={hper}: evaluation can only start on an env reset."
            )
        eval_env_config = eval_env_config or env_config
        conditions = list(stop_conditions or [])
        stats = self.step(env_config=env_config)
        while not any([c(stats) for c in conditions]):
            if steps_per_eval and not self.state["algorithm/steps"] % steps_per_eval:
                self.eval(env_config=eval_env_config)
            stats = self.step(env_config=env_config)
        return stats

    def state_dict(self) -> dict[str, Any]:
        """Algorithm state plus the trainer counters (plain types, for
        ``torch.save`` / ``torch.load(weights_only=True)``)."""
        return {"algorithm": self.algorithm.state_dict(), "trainer": dict(self.state)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`; the environment restarts from a reset."""
        self.algorithm.load_state_dict(state["algorithm"])
        self.state = {k: int(v) for k, v in state["trainer"].items()}


def _algorithm(
    trainer: str,
    env_cls_or_algorithm: Any,
    algorithm_cls: type[_Algorithm],
    algorithm_config: Mapping[str, Any],
) -> _Algorithm:
    """The trainer's algorithm: the one given, or one built from an env factory."""
    if isinstance(env_cls_or_algorithm, AlgorithmBase):
        if algorithm_config:
            raise TypeError(
                f"{trainer}() got an already-built {type(env_cls_or_algorithm).__name__} and "
                f"algorithm keyword arguments ({', '.join(sorted(algorithm_config))}); pass "
                f"either {trainer}(algorithm) or {trainer}(env_cls, **hyperparameters)."
            )
        return env_cls_or_algorithm  # type: ignore[return-value]
    return algorithm_cls(env_cls_or_algorithm, **algorithm_config)


class Trainer(GenericTrainerBase[Algorithm]):
    """Feedforward PPO trainer.

    Args:
        env_cls: Environment factory, built as
            ``env_cls(num_envs, horizon, config=env_config, device=device)``;
            or an already-built :class:`~rl8.algorithms.Algorithm` (as in rl8
            1.0.0: ``Trainer(AlgorithmConfig(...).build(env_cls))``), then
            without ``algorithm_config``.
        tracker: ``"auto"`` (default: a new MLflow run), ``None`` or an
            :class:`~rl8.tracking.MlflowTracker` (see :class:`GenericTrainerBase`).
        **algorithm_config: Any :class:`~rl8.algorithms.AlgorithmConfig` field.

    Raises:
        TypeError: An algorithm and ``algorithm_config`` both given.
        ValueError: An unknown or invalid hyperparameter (named).

    Example:
        >>> from rl8 import Trainer
        >>> from rl8.env import DiscreteDummyEnv
        >>> trainer = Trainer(DiscreteDummyEnv, num_envs=64, horizon=8, tracker=None)
        >>> stats = trainer.step()
    """

    def __init__(
        self,
        env_cls: EnvFactory | Algorithm,
        /,
        *,
        tracker: TrackerArg = AUTO,
        **algorithm_config: Any,
    ) -> None:
        algorithm = _algorithm("Trainer", env_cls, Algorithm, algorithm_config)
        super().__init__(algorithm, tracker=tracker)


class RecurrentTrainer(GenericTrainerBase[RecurrentAlgorithm]):
    """Recurrent PPO trainer (LSTM by default).

    Args:
        env_cls: Environment factory, or an already-built
            :class:`~rl8.algorithms.RecurrentAlgorithm` (then without
            ``algorithm_config``).
        tracker: ``"auto"`` (default: a new MLflow run), ``None`` or an
            :class:`~rl8.tracking.MlflowTracker` (see :class:`GenericTrainerBase`).
        **algorithm_config: Any :class:`~rl8.algorithms.RecurrentAlgorithmConfig` field.

    Raises:
        TypeError: An algorithm and ``algorithm_config`` both given.
        ValueError: An unknown or invalid hyperparameter (named).
    """

    def __init__(
        self,
        env_cls: EnvFactory | RecurrentAlgorithm,
        /,
        *,
        tracker: TrackerArg = AUTO,
        **algorithm_config: Any,
    ) -> None:
        algorithm = _algorithm("RecurrentTrainer", env_cls, RecurrentAlgorithm, algorithm_config)
        super().__init__(algorithm, tracker=tracker)
