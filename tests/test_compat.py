"""rl8 1.0.0 code keeps working beside the current API: building algorithms
from configs, trainers over built algorithms, exports, scheduler return
values, and clear errors for environments of the 1.0.0 form."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import torch

import rl8
from rl8 import (
    Algorithm,
    AlgorithmConfig,
    DiscreteDummyEnv,
    Env,
    RecurrentAlgorithm,
    RecurrentAlgorithmConfig,
    RecurrentTrainer,
    TrainConfig,
    Trainer,
)
from rl8.algorithms._compat import build_algorithm
from rl8.env import EnvProtocolError
from rl8.schedulers import EntropyScheduler, LRScheduler
from rl8.specs import DiscreteSpec, UnboundedSpec


def build(config: AlgorithmConfig, env_cls: Any) -> Any:
    """rl8 1.0.0's ``config.build(env_cls)``: the method where it exists,
    else the function it calls (``build_algorithm``); both are checked to
    agree once the method is there."""
    if hasattr(type(config), "build"):
        algo = config.build(env_cls)
        assert type(algo) is type(build_algorithm(config, env_cls))
        return algo
    return build_algorithm(config, env_cls)


# -- the rl8 1.0.0 usage of the anchors (shared/anchors/README.md) ------------------


def test_rl8_1_0_0_algorithm_and_trainer_usage() -> None:
    algo = build(
        AlgorithmConfig(num_envs=16, horizon=8, horizons_per_env_reset=-1, device="cpu"),
        DiscreteDummyEnv,
    )
    assert isinstance(algo, Algorithm)
    assert algo.validate() is algo
    collect_stats = algo.collect()
    assert collect_stats["env/steps"] == 16 * 8
    assert {"rewards/mean", "returns/mean", "profiling/collect_ms"} <= set(collect_stats)
    step_stats = algo.step()
    assert {"losses/total", "monitors/kl_div", "profiling/step_ms"} <= set(step_stats)
    trainer = Trainer(algo, tracker=None)
    assert trainer.algorithm is algo
    train_stats = trainer.step()
    assert train_stats["env/steps"] == 16 * 8 and train_stats["algorithm/steps"] == 1


def test_recurrent_config_builds_a_recurrent_algorithm() -> None:
    cfg = RecurrentAlgorithmConfig(num_envs=8, horizon=8, seq_len=4, device="cpu")
    algo = build(cfg, DiscreteDummyEnv)
    assert isinstance(algo, RecurrentAlgorithm) and algo.config.seq_len == 4
    stats = RecurrentTrainer(algo, tracker=None).step()
    assert stats["env/steps"] == 8 * 8


def test_algorithm_takes_a_config_object_and_copies_it() -> None:
    cfg = AlgorithmConfig(num_envs=8, horizon=4, gamma=0.9, device="cpu")
    algo = Algorithm(DiscreteDummyEnv, config=cfg)
    cfg.num_envs = 1000  # later changes to the caller's config change nothing
    assert algo.config.num_envs == 8 and algo.config.gamma == 0.9
    with pytest.raises(TypeError, match="both config= and"):
        Algorithm(DiscreteDummyEnv, config=cfg, gamma=0.5)
    with pytest.raises(TypeError, match="RecurrentAlgorithm"):
        Algorithm(DiscreteDummyEnv, config=RecurrentAlgorithmConfig(num_envs=8, horizon=8))
    # a feedforward config gets the recurrent defaults
    rec = RecurrentAlgorithm(DiscreteDummyEnv, config=AlgorithmConfig(num_envs=8, horizon=8))
    assert rec.config.seq_len == RecurrentAlgorithmConfig().seq_len


def test_build_validates_the_config() -> None:
    with pytest.raises(ValueError, match="gamma"):
        build(AlgorithmConfig(num_envs=8, horizon=4, gamma=2.0), DiscreteDummyEnv)
    algo = Algorithm(DiscreteDummyEnv, num_envs=8, horizon=4)
    algo.config.gamma = 0.0
    with pytest.raises(ValueError, match="gamma"):
        algo.validate()


def test_trainer_takes_an_algorithm_or_an_env_class_not_both() -> None:
    algo = Algorithm(DiscreteDummyEnv, num_envs=8, horizon=4)
    with pytest.raises(TypeError, match=r"already-built Algorithm.*horizon"):
        Trainer(algo, horizon=8, tracker=None)
    rec = RecurrentAlgorithm(DiscreteDummyEnv, num_envs=8, horizon=8, seq_len=4)
    with pytest.raises(TypeError, match="RecurrentTrainer"):
        RecurrentTrainer(rec, seq_len=2, tracker=None)
    assert (
        Trainer(DiscreteDummyEnv, num_envs=8, horizon=4, tracker=None).algorithm.config.horizon == 4
    )


# -- exports -----------------------------------------------------------------------

#: ``dir(rl8)`` of rl8 1.0.0 after ``import rl8`` (public names and the
#: submodules its __init__ imported).
RL8_1_0_0_NAMES = [
    "Algorithm",
    "AlgorithmConfig",
    "Env",
    "RecurrentAlgorithm",
    "RecurrentAlgorithmConfig",
    "RecurrentTrainer",
    "TrainConfig",
    "Trainer",
    "algorithms",
    "conditions",
    "distributions",
    "env",
    "models",
    "policies",
    "schedulers",
    "trainers",
]


@pytest.mark.parametrize("name", RL8_1_0_0_NAMES)
def test_rl8_1_0_0_top_level_names_exist(name: str) -> None:
    assert getattr(rl8, name) is not None
    assert name in dir(rl8)


def test_submodules_as_attributes_and_their_names() -> None:
    assert rl8.models.Model is rl8.models.base.Model
    from rl8.distributions import Categorical, Normal, SquashedNormal  # noqa: F401
    from rl8.policies import Policy  # noqa: F401

    assert rl8.schedulers.EntropyScheduler is EntropyScheduler


@pytest.mark.parametrize(
    ("module", "name", "hint"),
    [
        ("rl8", "data", "DataKeys"),
        ("rl8", "nn", "rl8.algorithms.gae"),
        ("rl8", "views", "seq_len"),
        ("rl8.algorithms", "GenericAlgorithmBase", "AlgorithmBase"),
        ("rl8.models", "DefaultDiscreteModel", "MLPModel"),
        ("rl8.schedulers", "ConstantScheduler", "schedule_value"),
        ("rl8.env", "GenericEnv", "rl8.env.Env"),
    ],
)
def test_removed_names_say_what_to_use(module: str, name: str, hint: str) -> None:
    import importlib

    with pytest.raises(AttributeError, match=r"rl8 1\.0\.0") as e:
        getattr(importlib.import_module(module), name)
    assert hint in str(e.value) and "docs/migration.md" in str(e.value)


def test_unknown_names_still_raise_the_usual_error() -> None:
    with pytest.raises(AttributeError, match=r"has no attribute 'nope'$"):
        rl8.nope  # noqa: B018


def test_importing_a_removed_module_says_what_to_use() -> None:
    with pytest.raises(ModuleNotFoundError, match="DataKeys"):
        from rl8.data import DataKeys  # noqa: F401


# -- schedulers --------------------------------------------------------------------


def test_scheduler_step_returns_the_new_value() -> None:
    ent = EntropyScheduler(0.1, schedule=[(0, 0.1), (10, 0.01)], kind="step")
    assert ent.step(10) == 0.01 == ent.coeff
    assert EntropyScheduler(0.3).step(100) == 0.3
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    lr = LRScheduler(opt, schedule=[(0, 1.0), (100, 0.0)], kind="interp")
    assert lr.step(50) == pytest.approx(0.5) == lr.lr
    assert LRScheduler(opt).step(10) == opt.param_groups[0]["lr"]


# -- environments of the rl8 1.0.0 form ------------------------------------------


class OldSignatureEnv(Env):
    """1.0.0 constructor: no ``config`` keyword."""

    def __init__(self, num_envs: int, /, horizon: int | None = None, *, device: Any = "cpu"):
        super().__init__(num_envs, horizon, device=device)
        self.observation_spec = UnboundedSpec(1)
        self.action_spec = DiscreteSpec(2)


class MappingStepEnv(DiscreteDummyEnv):
    """1.0.0 step(): a mapping with "obs" and "rewards" instead of a tuple."""

    def step(self, action: torch.Tensor) -> Mapping[str, torch.Tensor]:  # type: ignore[override]
        obs, reward = super().step(action)
        return {"obs": obs, "rewards": reward.unsqueeze(-1)}


def test_env_without_config_keyword_fails_at_construction() -> None:
    with pytest.raises(EnvProtocolError, match="takes no config keyword") as e:
        Algorithm(OldSignatureEnv, num_envs=4, horizon=4)
    assert "config=None" in str(e.value) and "docs/migration.md" in str(e.value)


def test_env_step_returning_a_mapping_fails_at_the_first_collect() -> None:
    algo = Algorithm(MappingStepEnv, num_envs=4, horizon=4)
    with pytest.raises(EnvProtocolError, match=r"rl8 1\.0\.0 form") as e:
        algo.collect()
    msg = str(e.value)
    assert "return obs, rewards" in msg and "docs/migration.md" in msg and "'obs'" in msg


def test_env_checks_stop_after_the_first_collect() -> None:
    algo = Algorithm(DiscreteDummyEnv, num_envs=4, horizon=4)
    assert algo._env_step_fn() == algo._checked_env_step
    algo.collect()
    assert algo._env_step_fn() == algo._env_step  # unchecked: env.step as a Step


def test_env_step_with_wrong_reward_shape_is_named() -> None:
    class WideReward(DiscreteDummyEnv):
        def step(self, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            obs, reward = super().step(action)
            return obs, reward.unsqueeze(-1).expand(-1, 3)

    with pytest.raises(EnvProtocolError, match=r"reward has shape \(4, 3\)"):
        Algorithm(WideReward, num_envs=4, horizon=4).collect()


def test_tensordict_step_output_is_detected() -> None:
    tensordict = pytest.importorskip("tensordict")

    class TensorDictEnv(DiscreteDummyEnv):
        def step(self, action: torch.Tensor) -> Any:
            obs, reward = super().step(action)
            return tensordict.TensorDict(
                {"obs": obs, "rewards": reward.unsqueeze(-1)}, batch_size=[self.num_envs]
            )

    with pytest.raises(EnvProtocolError, match="TensorDict"):
        Algorithm(TensorDictEnv, num_envs=4, horizon=4).collect()


def test_torchrl_specs_are_detected_at_construction() -> None:
    torchrl_data = pytest.importorskip("torchrl.data")

    class TorchrlSpecEnv(DiscreteDummyEnv):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.action_spec = torchrl_data.Categorical(2, shape=torch.Size([1]))

    with pytest.raises(EnvProtocolError, match=r"torchrl spec.*DiscreteSpec\(2"):
        Algorithm(TorchrlSpecEnv, num_envs=4, horizon=4)


def test_trainconfig_still_builds_with_flat_fields() -> None:
    trainer = TrainConfig(DiscreteDummyEnv, num_envs=8, horizon=4).build(tracker=None)
    assert trainer.algorithm.config.num_envs == 8
