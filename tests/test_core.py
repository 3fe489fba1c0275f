"""The library API: TrainConfig, trainers, algorithms, conditions, schedulers."""

from __future__ import annotations

import json

import pytest
import torch

import rl8
from rl8 import (
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
from rl8.algorithms import gae
from rl8.distributions import Categorical, Normal, SquashedNormal
from rl8.errors import HyperparameterError
from rl8.schedulers import EntropyScheduler, LRScheduler
from rl8.specs import BoundedSpec, DiscreteSpec, UnboundedSpec
from rl8.tracking import MlflowTracker

SMALL = {"num_envs": 16, "horizon": 8}


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


def test_state_dict_roundtrip_continues_identically() -> None:
    torch.manual_seed(0)
    a = Trainer(ContinuousDummyEnv, **SMALL, tracker=None)
    a.step()
    sd = a.state_dict()
    b = Trainer(ContinuousDummyEnv, **SMALL, tracker=None)
    b.load_state_dict(sd)
    assert b.state == a.state
    for pa, pb in zip(a.algorithm.policy.model.parameters(), b.algorithm.policy.model.parameters()):
        assert torch.equal(pa, pb)
    b.step()
    assert b.state["algorithm/steps"] == 2


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


def test_conditions() -> None:
    assert HitsUpperBound("x", 1.0)({"x": 1.0}) and not HitsUpperBound("x", 1.0)({"x": 0.5})
    assert HitsLowerBound("x", 0.0)({"x": -1}) and not HitsLowerBound("x", 0.0)({"x": 1})
    both = And([HitsUpperBound("x", 1), HitsLowerBound("y", 0)])
    assert both({"x": 2, "y": -1}) and not both({"x": 2, "y": 1})
    p = Plateaus("x", patience=2)
    assert [p({"x": v}) for v in (1.0, 1.0, 1.0)] == [False, True, True] or not p({"x": 5.0})
    inc = StopsIncreasing("x", patience=2)
    assert [inc({"x": v}) for v in (1, 2, 2, 1)] == [False, False, False, True]
    dec = StopsDecreasing("x", patience=1)
    assert [dec({"x": v}) for v in (3, 2, 2)] == [False, False, True]
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
    "kwargs",
    [
        {"accumulate_grads": True, "sgd_minibatch_size": 32},
        {"enable_amp": True},
        {"target_kl_div": 1e-9},
        {"dual_clip_param": 3.0, "vf_clip_param": None, "normalize_rewards": False},
        {"optimizer_cls": torch.optim.SGD, "optimizer_config": {"lr": 0.01}},
        {"update_chunk_size": 16, "sgd_minibatch_size": 1 << 30},
    ],
)
def test_hyperparameter_paths_run(kwargs) -> None:
    stats = Trainer(DiscreteDummyEnv, **SMALL, **kwargs, tracker=None).step()
    assert torch.isfinite(torch.tensor(stats["losses/total"]))
    if "target_kl_div" in kwargs:
        assert stats["monitors/stopped_early"] in (0.0, 1.0)


def test_chunked_update_equals_unchunked() -> None:
    results = []
    for chunk in (10_000, 32):
        torch.manual_seed(0)
        t = Trainer(
            ContinuousDummyEnv,
            **SMALL,
            sgd_minibatch_size=1 << 30,
            update_chunk_size=chunk,
            tracker=None,
        )
        t.step()
        results.append(
            torch.cat([p.detach().flatten() for p in t.algorithm.policy.model.parameters()])
        )
    assert torch.allclose(results[0], results[1], atol=1e-5)


def test_recurrent_trainer_steps_and_evals() -> None:
    trainer = RecurrentTrainer(
        ContinuousDummyEnv, **SMALL, seq_len=4, horizons_per_env_reset=1, tracker=None
    )
    stats = trainer.step()
    assert stats["env/steps"] == 128
    assert "eval/returns/mean" in trainer.eval()
