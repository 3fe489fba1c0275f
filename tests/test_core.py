"""The library API: TrainConfig, trainers, algorithms, conditions, schedulers."""

from __future__ import annotations

import json

import pytest
import torch

import rl8
from rl8 import (
    AlgorithmConfig,
    And,
    ContinuousDummyEnv,
    DiscreteDummyEnv,
    HitsLowerBound,
    HitsUpperBound,
    Plateaus,
    RecurrentTrainer,
    StopsDecreasing,
    StopsIncreasing,
    TrainConfig,
    Trainer,
)
from rl8.algorithms import Algorithm, RecurrentAlgorithm, gae
from rl8.distributions import Categorical, Normal, SquashedNormal
from rl8.errors import HyperparameterError
from rl8.schedulers import EntropyScheduler, LRScheduler
from rl8.specs import BoundedSpec, DiscreteSpec, UnboundedSpec
from rl8.tracking import MlflowTracker

SMALL = {"num_envs": 16, "horizon": 8, "num_sgd_iters": 4}


def test_documented_imports() -> None:
    from rl8 import DiscreteDummyEnv as A
    from rl8.env import DiscreteDummyEnv as B

    assert A is B
    assert rl8.Trainer is Trainer


def test_trainconfig_build_drops_none_and_picks_trainer() -> None:
    trainer = TrainConfig(DiscreteDummyEnv, horizon=8, gamma=1, num_envs=16).build(tracker=None)
    assert isinstance(trainer, Trainer)
    assert trainer.algorithm.config.gamma == 1
    assert trainer.algorithm.config.clip_param == 0.2  # the trainer's default
    rt = TrainConfig(DiscreteDummyEnv, recurrent=True, seq_len=4, **SMALL).build(tracker=None)
    assert isinstance(rt, RecurrentTrainer)
    with pytest.raises(ValueError, match="seq_len"):
        TrainConfig(DiscreteDummyEnv, seq_len=4, **SMALL).build(tracker=None)


def test_trainconfig_from_yaml_and_json(tmp_path) -> None:
    y = tmp_path / "config.yaml"
    y.write_text("env_cls: rl8.env.DiscreteDummyEnv\nhorizon: 8\ngamma: 1\nnum_envs: 16\n")
    cfg = TrainConfig.from_file(y)
    assert cfg.env_cls is DiscreteDummyEnv and cfg.horizon == 8
    stats = cfg.build(tracker=None).step()
    assert stats["env/steps"] == 16 * 8
    j = tmp_path / "config.json"
    j.write_text(
        json.dumps({"env_cls": "rl8.env.ContinuousDummyEnv", "optimizer_cls": "torch.optim.SGD"})
    )
    cfg = TrainConfig.from_file(j)
    assert cfg.optimizer_cls is torch.optim.SGD and cfg.env_cls is ContinuousDummyEnv


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("env_cls: rl8.env.NoSuchEnv\n", "rl8.env.NoSuchEnv"),
        ("env_cls: no_such_pkg.Env\n", "no_such_pkg.Env"),
    ],
)
def test_trainconfig_bad_import_names_path(tmp_path, text, needle) -> None:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    with pytest.raises(ImportError, match=needle.replace(".", r"\.")):
        TrainConfig.from_file(p)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"gamma": 0.0}, "gamma"),
        ({"gamma": 1.5}, "gamma"),
        ({"gae_lambda": -0.1}, "gae_lambda"),
        ({"sgd_minibatch_size": 0}, "sgd_minibatch_size"),
        ({"vf_coeff": float("nan")}, "vf_coeff"),
        ({"entropy_coeff": float("inf")}, "entropy_coeff"),
        ({"max_grad_norm": True}, "max_grad_norm"),
        ({"optimizer_config": {"lr": 0.0}}, "optimizer_config.lr"),
        ({"device": "tpu"}, "device"),
        ({"clip_param": 0}, "clip_param"),
        ({"horizon": 0}, "horizon"),
        ({"horizons_per_env_reset": 0}, "horizons_per_env_reset"),
        ({"dual_clip_param": 0.5}, "dual_clip_param"),
        ({"lr_schedule": [[100, 1e-3], [0, 1e-4]]}, "lr_schedule"),
    ],
)
def test_invalid_hyperparameters_name_the_field(kwargs, field) -> None:
    with pytest.raises(HyperparameterError, match=field) as e:
        Trainer(DiscreteDummyEnv, **{**SMALL, **kwargs}, tracker=None)
    assert e.value.field == field


def test_an_unknown_hyperparameter_is_a_type_error_with_the_closest_name() -> None:
    with pytest.raises(TypeError, match="has no field 'gama' \\(did you mean 'gamma'\\?\\)"):
        Trainer(DiscreteDummyEnv, **SMALL, gama=0.9, tracker=None)


def test_recurrent_validation() -> None:
    with pytest.raises(ValueError, match="seq_len"):
        RecurrentTrainer(DiscreteDummyEnv, num_envs=16, horizon=10, seq_len=4, tracker=None)
    with pytest.raises(ValueError, match="seqs_per_state_reset"):
        RecurrentTrainer(DiscreteDummyEnv, **SMALL, seq_len=4, seqs_per_state_reset=0, tracker=None)


def test_step_stats_are_flat_and_counted() -> None:
    trainer = Trainer(DiscreteDummyEnv, **SMALL, tracker=None)
    stats = trainer.step()
    for key in (
        "returns/mean",
        "rewards/mean",
        "losses/policy",
        "losses/vf",
        "losses/entropy",
        "losses/total",
        "monitors/kl_div",
        "env/steps",
        "algorithm/steps",
        "algorithm/collects",
        "profiling/collect_ms",
        "profiling/step_ms",
    ):
        assert key in stats, key
        assert isinstance(stats[key], float | int)
    trainer.step()
    assert trainer.state == {"algorithm/collects": 2, "algorithm/steps": 2, "env/steps": 256}


def test_eval_interval_and_config_errors() -> None:
    trainer = Trainer(DiscreteDummyEnv, **SMALL, horizons_per_env_reset=2, tracker=None)
    stats = trainer.eval(env_config={"bounds": 1.0})
    assert set(stats) >= {"eval/returns/mean", "eval/rewards/mean"}
    assert trainer.state["algorithm/collects"] == 2
    trainer.step()
    with pytest.raises(RuntimeError, match="horizons_per_env_reset"):
        trainer.eval()
    trainer.step()
    trainer.eval()
    never = Trainer(DiscreteDummyEnv, **SMALL, horizons_per_env_reset=-1, tracker=None)
    never.step()
    with pytest.raises(ValueError, match="horizons_per_env_reset"):
        never.eval(env_config={"bounds": 1.0})
    assert "eval/returns/mean" in never.eval()


def test_run_validates_and_stops() -> None:
    trainer = Trainer(DiscreteDummyEnv, **SMALL, horizons_per_env_reset=2, tracker=None)
    with pytest.raises(ValueError, match="steps_per_eval"):
        trainer.run(steps_per_eval=3, stop_conditions=[HitsUpperBound("algorithm/steps", 1)])
    stats = trainer.run(steps_per_eval=2, stop_conditions=[HitsUpperBound("algorithm/steps", 4)])
    assert stats["algorithm/steps"] == 4
    never = Trainer(DiscreteDummyEnv, **SMALL, tracker=None)
    with pytest.raises(ValueError, match="horizons_per_env_reset"):
        never.run(steps_per_eval=1, eval_env_config={"bounds": 1.0})


def test_unknown_env_param_fails_at_build() -> None:
    with pytest.raises(ValueError, match="nope"):
        Trainer(DiscreteDummyEnv, **SMALL, env_config={"nope": 1.0}, tracker=None)


def _params(trainer_or_algorithm) -> torch.Tensor:
    algorithm = getattr(trainer_or_algorithm, "algorithm", trainer_or_algorithm)
    return torch.cat([p.detach().flatten() for p in algorithm.policy.model.parameters()])


def _without_timings(stats: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in stats.items() if not k.startswith("profiling/")}


@pytest.mark.parametrize("trainer_cls", [Trainer, RecurrentTrainer])
def test_state_dict_roundtrip_continues_identically(trainer_cls) -> None:
    # horizons_per_env_reset=1: every collect starts from a reset, as a restored
    # trainer's first collect does, so the original and the copy see the same data.
    kwargs = {**SMALL, "horizons_per_env_reset": 1, "device": "cpu", "tracker": None}
    if trainer_cls is RecurrentTrainer:
        kwargs["seq_len"] = 4
    torch.manual_seed(0)
    a = trainer_cls(ContinuousDummyEnv, **kwargs)
    a.step()
    a.step()  # the optimizer has state (Adam moments) worth restoring
    sd = a.state_dict()
    torch.manual_seed(1)  # a different initialization, replaced by the state dict
    b = trainer_cls(ContinuousDummyEnv, **kwargs)
    assert not torch.equal(_params(a), _params(b))
    b.load_state_dict(sd)
    assert b.state == a.state
    assert torch.equal(_params(a), _params(b))
    for _ in range(2):
        torch.manual_seed(2)
        stats_a = a.step()
        torch.manual_seed(2)
        stats_b = b.step()
        assert _without_timings(stats_b) == _without_timings(stats_a)
        assert torch.equal(_params(b), _params(a))
    assert (
        b.state
        == a.state
        == {
            "algorithm/collects": 4,
            "algorithm/steps": 4,
            "env/steps": 4 * 16 * 8,
        }
    )


def test_each_trainer_tracks_its_own_mlflow_run(tmp_path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runs = []
    for _ in range(2):
        tracker = MlflowTracker(tracking_uri=uri, experiment_name="t")
        trainer = Trainer(DiscreteDummyEnv, **SMALL, tracker=tracker, gamma=0.9)
        trainer.step()
        trainer.step()
        tracker.close()
        runs.append(tracker.run_id)
    assert runs[0] != runs[1]
    client = tracker.client
    run = client.get_run(runs[1])
    assert run.data.params["gamma"] == "0.9"
    history = client.get_metric_history(runs[1], "returns/mean")
    assert [m.step for m in history] == [128, 256]


def test_tracker_wait_makes_async_metrics_visible_before_close(tmp_path) -> None:
    tracker = MlflowTracker(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    for step in range(3):
        tracker.log_metrics({"a": float(step), "skipped": float("nan")}, step=step)
    tracker.wait()  # what a checkpoint does before it is written
    history = tracker.client.get_metric_history(tracker.run_id, "a")
    assert [(m.step, m.value) for m in history] == [(0, 0.0), (1, 1.0), (2, 2.0)]
    assert tracker.client.get_metric_history(tracker.run_id, "skipped") == []
    tracker.close()
    assert tracker.client.get_run(tracker.run_id).info.status == "FINISHED"


def test_gae_matches_naive_recursion() -> None:
    torch.manual_seed(0)
    rewards, values = torch.randn(3, 5), torch.randn(3, 6)
    adv, ret = gae(rewards, values, 0.9, 0.8)
    expected = torch.zeros(3, 5)
    for n in range(3):
        acc = 0.0
        for t in reversed(range(5)):
            delta = rewards[n, t] + 0.9 * values[n, t + 1] - values[n, t]
            acc = delta + 0.9 * 0.8 * acc
            expected[n, t] = acc
    assert torch.allclose(adv, expected, atol=1e-6)
    assert torch.allclose(ret, expected + values[:, :-1], atol=1e-6)


def test_distributions_logp_matches_torch() -> None:
    torch.manual_seed(0)
    spec = DiscreteSpec(3)
    logits = torch.randn(5, 3)
    d = Categorical(logits, spec)
    a = d.sample()
    assert a.shape == (5, 1) and a.dtype == torch.int64
    ref = torch.distributions.Categorical(logits=logits)
    assert torch.allclose(d.logp(a), ref.log_prob(a[:, 0]), atol=1e-6)
    assert torch.allclose(d.entropy(), ref.entropy(), atol=1e-6)
    assert torch.equal(d.deterministic_sample()[:, 0], logits.argmax(-1))
    feats = torch.randn(5, 4).clamp(-1.5, 1.5)
    n = Normal(feats, UnboundedSpec(2))
    ref_n = torch.distributions.Normal(feats[:, :2], feats[:, 2:].exp())
    x = n.sample()
    assert torch.allclose(n.logp(x), ref_n.log_prob(x).sum(-1), atol=1e-5)
    s = SquashedNormal(feats, BoundedSpec(2, low=-2.0, high=2.0))
    y = s.sample()
    assert y.abs().max() <= 2.0
    assert torch.isfinite(s.logp(y)).all()
    assert torch.allclose(s.deterministic_sample(), 2 * torch.tanh(feats[:, :2]))


@pytest.mark.parametrize(
    ("make", "values", "expected"),
    [
        (lambda: HitsUpperBound("x", 1.0), [0.5, 1.0, 2.0, 0.9], [False, True, True, False]),
        (lambda: HitsLowerBound("x", 0.0), [1, 0, -1, 0.5], [False, True, True, False]),
        # Unchanged (within rtol) for 2 consecutive calls, then a jump resets the count.
        (
            lambda: Plateaus("x", patience=2),
            [1.0, 1.0, 1.0, 5.0, 5.0, 5.004],
            [False, False, True, False, False, True],
        ),
        # rtol is relative: 5 -> 5.006 is a change of more than 1e-3 * 5.
        (lambda: Plateaus("x", patience=1), [5.0, 5.0, 5.006], [False, True, False]),
        # The first value has nothing to compare with, even when it is 0.
        (lambda: Plateaus("x", patience=1), [0.0, 0.0, 1.0], [False, True, False]),
        (
            lambda: StopsIncreasing("x", patience=2),
            [1, 2, 2, 1, 3, 3, 3],
            [False, False, False, True, False, False, True],
        ),
        (
            lambda: StopsDecreasing("x", patience=1),
            [3, 2, 2, 1, 1],
            [False, False, True, False, True],
        ),
    ],
    ids=[
        "upper",
        "lower",
        "plateaus",
        "plateaus_rtol",
        "plateaus_first_zero",
        "stops_increasing",
        "stops_decreasing",
    ],
)
def test_condition_sequences(make, values, expected) -> None:
    condition = make()
    assert [condition({"x": v}) for v in values] == expected


def test_and_condition_and_missing_key() -> None:
    both = And([HitsUpperBound("x", 1), HitsLowerBound("y", 0)])
    cases = [({"x": 2, "y": -1}, True), ({"x": 2, "y": 1}, False), ({"x": 0, "y": -1}, False)]
    assert [both(stats) for stats, _ in cases] == [want for _, want in cases]
    with pytest.raises(KeyError, match="missing"):
        HitsUpperBound("missing", 1)({"x": 1})


def test_schedulers() -> None:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    lr = LRScheduler(opt, schedule=[(0, 1.0), (100, 0.0)], kind="interp")
    lr.step(50)
    assert lr.lr == pytest.approx(0.5)
    lr.step(500)
    assert lr.lr == 0.0
    ent = EntropyScheduler(0.1, schedule=[(0, 0.1), (10, 0.01)], kind="step")
    ent.step(9)
    assert ent.coeff == 0.1
    ent.step(10)
    assert ent.coeff == 0.01


def test_entropy_and_lr_schedules_reach_the_trainer() -> None:
    trainer = Trainer(
        DiscreteDummyEnv,
        **SMALL,
        entropy_coeff_schedule=[[0, 0.1], [128, 0.0]],
        lr_schedule=[[0, 1e-3], [128, 1e-4]],
        tracker=None,
    )
    first = trainer.step()
    assert first["coefficients/entropy"] == 0.0 and first["coefficients/lr"] == pytest.approx(1e-4)


@pytest.mark.parametrize(
    ("kwargs", "minibatches"),
    [
        ({"accumulate_grads": True, "sgd_minibatch_size": 32}, 16),
        ({"enable_amp": True}, 4),
        ({"dual_clip_param": 3.0, "vf_clip_param": None, "normalize_rewards": False}, 4),
        ({"optimizer_cls": torch.optim.SGD, "optimizer_config": {"lr": 0.01}}, 4),
        ({"update_chunk_size": 16, "sgd_minibatch_size": 1 << 30}, 4),
    ],
)
def test_hyperparameter_paths_run(kwargs, minibatches) -> None:
    torch.manual_seed(0)
    trainer = Trainer(DiscreteDummyEnv, **SMALL, **kwargs, tracker=None)
    before = _params(trainer)
    stats = trainer.step()
    assert torch.isfinite(torch.tensor(stats["losses/total"]))
    # 4 SGD passes over 128 samples, 4 minibatches each when they hold 32.
    assert stats["monitors/minibatches"] == minibatches
    assert stats["monitors/stopped_early"] == 0.0
    after = _params(trainer)
    assert torch.isfinite(after).all()
    assert not torch.equal(before, after)


@pytest.mark.parametrize(
    ("kwargs", "fused", "foreach"),
    [
        ({}, True, None),  # Adam has a fused CPU kernel: used by default
        ({"optimizer_config": {"foreach": True}}, None, True),  # the user's pick stands
        ({"optimizer_config": {"fused": False}}, False, None),
        ({"optimizer_cls": torch.optim.AdamW}, True, None),
        ({"optimizer_cls": torch.optim.RMSprop}, None, None),  # no fused kernel: as given
    ],
)
def test_torch_optimizers_run_fused_unless_told_otherwise(kwargs, fused, foreach) -> None:
    trainer = Trainer(DiscreteDummyEnv, **SMALL, **kwargs, tracker=None)
    defaults = trainer.algorithm.optimizer.defaults
    assert (defaults.get("fused"), defaults.get("foreach")) == (fused, foreach)
    assert torch.isfinite(torch.tensor(trainer.step()["losses/total"]))


@pytest.mark.parametrize(
    ("target_kl_div", "stopped_early", "minibatches"),
    [
        # The first minibatch's KL is ~0 (the policy has not moved yet); after
        # one optimizer step the second minibatch's exceeds 1.5e-9 and stops.
        (1e-9, 1.0, 2.0),
        # Never exceeded: all 4 passes of 4 minibatches run.
        (1e9, 0.0, 16.0),
    ],
)
def test_kl_early_stopping(target_kl_div, stopped_early, minibatches) -> None:
    torch.manual_seed(0)
    trainer = Trainer(
        DiscreteDummyEnv, **SMALL, sgd_minibatch_size=32, target_kl_div=target_kl_div, tracker=None
    )
    before = _params(trainer)
    stats = trainer.step()
    assert stats["monitors/stopped_early"] == stopped_early
    assert stats["monitors/minibatches"] == minibatches
    assert not torch.equal(before, _params(trainer))  # the first minibatch's step was kept


def _one_update(algorithm_cls, env_cls, **kwargs) -> torch.Tensor:
    """Parameters after one collect and one update (one SGD pass, no shuffling).

    Plain SGD with lr=1 moves the parameters by exactly the (clipped) gradient,
    so comparing parameters compares the gradients of the update.
    """
    torch.manual_seed(0)
    algorithm = algorithm_cls(
        env_cls,
        num_envs=16,
        horizon=8,
        num_sgd_iters=1,
        shuffle_minibatches=False,
        device="cpu",
        optimizer_cls=torch.optim.SGD,
        optimizer_config={"lr": 1.0},
        **kwargs,
    )
    before = _params(algorithm)
    algorithm.collect()
    stats = algorithm.step()
    after = _params(algorithm)
    assert not torch.equal(before, after)
    assert stats["monitors/stopped_early"] == 0.0
    return after


ALGORITHMS = [
    (Algorithm, {}),
    (RecurrentAlgorithm, {"seq_len": 4}),
]


@pytest.mark.parametrize("env_cls", [DiscreteDummyEnv, ContinuousDummyEnv])
@pytest.mark.parametrize(("algorithm_cls", "extra"), ALGORITHMS, ids=["ff", "recurrent"])
@pytest.mark.parametrize(
    "minibatch",
    [
        32,  # 4 equal minibatches of the 128-sample buffer
        64,  # 2 equal minibatches
        48,  # 48 + 48 + 32: the last minibatch is smaller
        96,  # 96 + 32
    ],
)
def test_accumulated_minibatches_equal_one_full_batch(
    algorithm_cls, extra, env_cls, minibatch
) -> None:
    full = _one_update(algorithm_cls, env_cls, sgd_minibatch_size=1 << 30, **extra)
    accumulated = _one_update(
        algorithm_cls,
        env_cls,
        sgd_minibatch_size=minibatch,
        accumulate_grads=True,
        **extra,
    )
    torch.testing.assert_close(accumulated, full, rtol=0, atol=1e-6)


@pytest.mark.parametrize("env_cls", [DiscreteDummyEnv, ContinuousDummyEnv])
@pytest.mark.parametrize(("algorithm_cls", "extra"), ALGORITHMS, ids=["ff", "recurrent"])
@pytest.mark.parametrize(
    ("minibatch", "chunk"),
    [
        (128, 32),  # the whole buffer in 4 equal chunks
        (128, 48),  # 48 + 48 + 32
        (64, 16),  # 2 minibatches of 4 chunks each
        (96, 64),  # 96 = 64 + 32, then 32 in one chunk
    ],
)
def test_chunked_update_equals_unchunked(algorithm_cls, extra, env_cls, minibatch, chunk) -> None:
    whole = _one_update(algorithm_cls, env_cls, sgd_minibatch_size=minibatch, **extra)
    chunked = _one_update(
        algorithm_cls,
        env_cls,
        sgd_minibatch_size=minibatch,
        update_chunk_size=chunk,
        **extra,
    )
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-6)


def test_recurrent_trainer_steps_and_evals() -> None:
    trainer = RecurrentTrainer(
        ContinuousDummyEnv, **SMALL, seq_len=4, horizons_per_env_reset=1, tracker=None
    )
    stats = trainer.step()
    assert stats["env/steps"] == 128
    assert "eval/returns/mean" in trainer.eval()


# -- per-environment defaults (Env.hyperparameters) ---------------------------------------


class _TunedDummy(DiscreteDummyEnv):
    hyperparameters = {"num_envs": 12, "horizon": 6, "gamma": 0.9, "lr": 3e-3}


def _resolved(config) -> dict:
    return {
        "num_envs": config.num_envs,
        "horizon": config.horizon,
        "gamma": config.gamma,
        "lr": config.optimizer_kwargs["lr"],
    }


def test_unset_fields_take_the_env_hyperparameters_on_every_construction_path() -> None:
    import functools

    tuned = {"num_envs": 12, "horizon": 6, "gamma": 0.9, "lr": 3e-3}
    built = [
        Trainer(_TunedDummy, tracker=None).algorithm,
        Trainer(functools.partial(_TunedDummy), tracker=None).algorithm,
        TrainConfig(_TunedDummy).build(tracker=None).algorithm,
        TrainConfig(_TunedDummy, recurrent=True, seq_len=2).build(tracker=None).algorithm,
        AlgorithmConfig().build(_TunedDummy),
        Algorithm(_TunedDummy, config=AlgorithmConfig()),
        Trainer(AlgorithmConfig().build(_TunedDummy), tracker=None).algorithm,
    ]
    for algorithm in built:
        assert _resolved(algorithm.config) == tuned
        assert algorithm.env.num_envs == 12
        assert algorithm.buffer.num_transitions == 12 * 6
        assert algorithm.optimizer.param_groups[0]["lr"] == 3e-3
        assert algorithm.params["num_envs"] == 12  # what a tracker logs


def test_fields_the_caller_sets_win_over_the_env_hyperparameters() -> None:
    given = Trainer(
        _TunedDummy, tracker=None, num_envs=8, gamma=None, optimizer_config={"lr": 1e-4}
    )
    assert _resolved(given.algorithm.config) == {
        "num_envs": 8,  # given
        "horizon": 6,  # the env's
        "gamma": 0.9,  # None: unset, so the env's
        "lr": 1e-4,  # given
    }
    legacy = TrainConfig(_TunedDummy, algorithm_config={"horizon": 4}).build(tracker=None)
    assert (legacy.algorithm.config.num_envs, legacy.algorithm.config.horizon) == (12, 4)
    # An env without hyperparameters of its own gets the library's defaults.
    plain = Trainer(DiscreteDummyEnv, tracker=None).algorithm.config
    defaults = AlgorithmConfig()
    assert (plain.num_envs, plain.horizon, plain.gamma) == (64, 32, 0.99)
    assert (defaults.num_envs, defaults.horizon, defaults.gamma) == (64, 32, 0.99)
    assert plain.optimizer_kwargs["lr"] == 1e-3


def test_cartpole_carries_its_tuned_hyperparameters() -> None:
    from rl8.envs import CartPole, Pendulum

    config = Trainer(CartPole, tracker=None).algorithm.config
    assert (config.num_envs, config.horizon, config.sgd_minibatch_size) == (64, 64, 1024)
    assert (config.num_sgd_iters, config.clip_param, config.optimizer_kwargs["lr"]) == (
        3,
        0.15,
        9e-3,
    )
    assert Pendulum.hyperparameters == {}  # the library's defaults


def test_an_env_hyperparameter_the_env_may_not_set_is_named() -> None:
    import functools

    class Bad(DiscreteDummyEnv):
        hyperparameters = {"num_env": 8}

    with pytest.raises(HyperparameterError, match=r"Bad.hyperparameters\['num_env'\].*num_envs"):
        Trainer(Bad, tracker=None)
    with pytest.raises(HyperparameterError, match=r"Bad.hyperparameters\['num_env'\]"):
        Trainer(functools.partial(Bad), tracker=None)  # named through the partial too
    Bad.hyperparameters = {"vf_clip_param": 1.0}  # None means "off" there: not env-tunable
    with pytest.raises(HyperparameterError, match="an environment may set num_envs"):
        Trainer(Bad, tracker=None)
    Bad.hyperparameters = {"num_envs": 0}  # checked like any given value
    with pytest.raises(HyperparameterError, match="num_envs=0"):
        Trainer(Bad, tracker=None)


def test_the_mlp_tanh_matches_torch_tanh_in_value_and_gradient() -> None:
    from rl8.models._layers import Tanh

    torch.manual_seed(0)
    for shape in [(1024, 64), (8, 64)]:  # the sigmoid route, and torch.tanh's
        x = torch.randn(*shape, requires_grad=True)
        ref = x.detach().clone().requires_grad_()
        y, y_ref = Tanh()(x), torch.tanh(ref)
        grad = torch.randn(*shape)
        y.backward(grad)
        y_ref.backward(grad)
        torch.testing.assert_close(y, y_ref, rtol=0, atol=3e-7)
        torch.testing.assert_close(x.grad, ref.grad, rtol=0, atol=2e-6)
    with torch.no_grad():  # inference (and export) use torch.tanh itself
        x = torch.randn(1024, 64)
        assert torch.equal(Tanh()(x), torch.tanh(x))
