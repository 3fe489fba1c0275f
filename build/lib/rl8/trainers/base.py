"""Trainers: the high-level training interface over one PPO algorithm."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any, Generic, TypeVar

from ..algorithms import Algorithm, AlgorithmBase, RecurrentAlgorithm
from ..conditions import Condition
from ..env import EnvFactory
from ..tracking import MlflowTracker

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
    its stats to an optional MLflow tracker.

    Args:
        algorithm: The PPO algorithm to train.
        tracker: MLflow run to log hyperparameters (once) and stats (one
            batched call per step or eval) into; ``None`` (default) logs nothing.
    """

    #: The PPO algorithm: environment, policy, optimizer and hyperparameters.
    algorithm: _Algorithm
    #: Running totals used for logging and for when evaluation is allowed.
    state: TrainerState

    def __init__(self, algorithm: _Algorithm, /, *, tracker: MlflowTracker | None = None) -> None:
        self.algorithm = algorithm
        self.tracker = tracker
        self.state = {"algorithm/collects": 0, "algorithm/steps": 0, "env/steps": 0}
        if tracker is not None:
            tracker.log_params(algorithm.params)

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
        without learning, and return their mean stats prefixed ``eval/``.

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
        for _ in range(max(1, hper)):
            for k, v in self.algorithm.collect(
                env_config=env_config, deterministic=deterministic
            ).items():
                stats[k].append(v)
            self.state["algorithm/collects"] += 1
        self.algorithm.state.buffered = False
        eval_stats = {f"eval/{k}": sum(v) / len(v) for k, v in stats.items()}
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


class Trainer(GenericTrainerBase[Algorithm]):
    """Feedforward PPO trainer.

    Args:
        env_cls: Environment factory, built as
            ``env_cls(num_envs, horizon, config=env_config, device=device)``.
        tracker: Optional MLflow run (see :class:`GenericTrainerBase`).
        **algorithm_config: Any :class:`~rl8.algorithms.AlgorithmConfig` field.

    Example:
        >>> from rl8 import Trainer
        >>> from rl8.env import DiscreteDummyEnv
        >>> trainer = Trainer(DiscreteDummyEnv, num_envs=64, horizon=8)
        >>> stats = trainer.step()
    """

    def __init__(
        self,
        env_cls: EnvFactory,
        /,
        *,
        tracker: MlflowTracker | None = None,
        **algorithm_config: Any,
    ) -> None:
        super().__init__(Algorithm(env_cls, **algorithm_config), tracker=tracker)


class RecurrentTrainer(GenericTrainerBase[RecurrentAlgorithm]):
    """Recurrent PPO trainer (LSTM by default).

    Args:
        env_cls: Environment factory.
        tracker: Optional MLflow run (see :class:`GenericTrainerBase`).
        **algorithm_config: Any :class:`~rl8.algorithms.RecurrentAlgorithmConfig` field.
    """

    def __init__(
        self,
        env_cls: EnvFactory,
        /,
        *,
        tracker: MlflowTracker | None = None,
        **algorithm_config: Any,
    ) -> None:
        super().__init__(RecurrentAlgorithm(env_cls, **algorithm_config), tracker=tracker)
