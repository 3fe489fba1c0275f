"""The config tree of ``python -m rl8.train``: every option composes and runs,
the schema rejects bad input with the key named, checkpoints round-trip."""

from __future__ import annotations

import dataclasses
import inspect
import math
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CONF_DIR, REPO_ROOT, TINY
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from rl8 import checkpoint
from rl8.build import build
from rl8.config import TrainerConf
from rl8.errors import ConfigError, DivergedError
from rl8.train import resume_config, run

ENVS = sorted(p.stem for p in (CONF_DIR / "env").glob("*.yaml"))
MODELS = sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
OPTIMIZERS = sorted(p.stem for p in (CONF_DIR / "optimizer").glob("*.yaml"))
OWN_EXPERIMENTS = ["cartpole", "memory", "pendulum"]
#: Every overlay of the repository's experiments/, which the package ships as its experiment group.
EXPERIMENTS = sorted(p.stem for p in (REPO_ROOT / "experiments").glob("*.yaml"))
#: Each schedule option, with an env whose parameters it randomizes.
SCHEDULE_ENVS = {
    "none": "dummy",
    "cartpole_curriculum": "cartpole",
    "pendulum_randomization": "pendulum",
}
NO_MLFLOW = [*TINY, "mlflow.enabled=false"]


def _tiny(model: str) -> list[str]:
    return [*NO_MLFLOW, "trainer.seq_len=4"] if model == "lstm" else NO_MLFLOW


def test_groups_have_the_documented_options() -> None:
    assert ENVS == ["cartpole", "continuous_dummy", "dummy", "gymnasium", "memory", "pendulum"]
    assert MODELS == ["lstm", "mlp"]
    assert OPTIMIZERS == ["adam", "adamw", "sgd"]
    assert (CONF_DIR / "trainer" / "ppo.yaml").is_file()
    assert sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml")) == EXPERIMENTS


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("env", ENVS)
def test_every_env_model_pair_composes_and_trains(compose, tmp_path, env, model) -> None:
    cfg = compose(f"env={env}", f"model={model}", *_tiny(model))
    assert build(cfg).train_config.recurrent is (model == "lstm")
    value = run(cfg, output_dir=tmp_path)
    assert isinstance(value, float)
    ckpt = checkpoint.load(tmp_path / checkpoint.CHECKPOINT_NAME)
    assert ckpt["trainer"]["trainer"]["algorithm/steps"] == 2
    assert ckpt["trainer"]["trainer"]["env/steps"] == 2 * 4 * 8
    assert "eval/returns/mean" in ckpt["loop"]["last_eval"]


@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_every_optimizer_builds(compose, optimizer) -> None:
    cfg = compose(f"optimizer={optimizer}", "optimizer.lr=0.001", *NO_MLFLOW)
    trainer = build(cfg).train_config.build(tracker=None)
    opt = trainer.algorithm.optimizer
    assert type(opt).__name__.lower() == optimizer
    assert opt.param_groups[0]["lr"] == pytest.approx(0.001)


@pytest.mark.parametrize(("schedule", "env"), sorted(SCHEDULE_ENVS.items()))
def test_every_schedule_runs_with_its_env(compose, tmp_path, schedule, env) -> None:
    cfg = compose(
        f"env={env}", f"schedule={schedule}", "trainer.horizons_per_env_reset=1", *NO_MLFLOW
    )
    assert build(cfg).schedule is not None
    run(cfg, output_dir=tmp_path)
    ckpt = checkpoint.load(tmp_path / checkpoint.CHECKPOINT_NAME)
    assert ckpt["schedule"]["seed"] == 0


@pytest.mark.parametrize("name", OWN_EXPERIMENTS)
def test_experiment_overlays_compose_and_build(compose, name) -> None:
    cfg = compose(f"+experiment={name}", "mlflow.enabled=false")
    assert cfg.env._target_.lower().endswith(name)
    build(cfg)


@pytest.mark.parametrize("env", ENVS)
def test_env_options_list_the_env_params_with_their_defaults(compose, env) -> None:
    cfg = compose(f"env={env}")
    env_cls = build(cfg).env_cls
    assert dict(cfg.env.config) == {k: p.default for k, p in env_cls.params.items()}


def test_trainer_node_holds_every_train_config_hyperparameter() -> None:
    from rl8 import TrainConfig

    own = {f.name for f in dataclasses.fields(TrainerConf)}
    core = {f.name for f in dataclasses.fields(TrainConfig)}
    # The rest comes from other nodes: env, model, optimizer, device; recurrent from the model.
    elsewhere = {"env_cls", "env_config", "model_cls", "model_config", "optimizer_cls"}
    elsewhere |= {"optimizer_config", "device", "recurrent"}
    elsewhere.add("algorithm_config")  # rl8 1.0.0 form, not a node of its own
    assert own == core - elsewhere


@pytest.mark.parametrize("model", ["mlp", "lstm"])
def test_app_defaults_are_the_library_defaults(compose, model) -> None:
    """``python -m rl8.train`` with no override trains exactly what the library
    builds from the same env class with no argument: every hyperparameter, the
    model's arguments, the optimizer and its learning rate."""
    from rl8 import TrainConfig
    from rl8.models import LSTMModel, MLPModel

    built = build(compose(f"model={model}")).train_config
    library = TrainConfig(built.env_cls, recurrent=model == "lstm")
    app = built.algorithm_kwargs()
    lib = library.algorithm_kwargs()
    model_cls = LSTMModel if model == "lstm" else MLPModel
    assert app.pop("model_cls") is model_cls
    assert lib.pop("model_cls") is None  # the library's default: the same class
    signature = inspect.signature(model_cls)
    defaults = {k: p.default for k, p in signature.parameters.items() if k in app["model_config"]}
    assert {
        k: tuple(v) if isinstance(v, list) else v for k, v in app.pop("model_config").items()
    } == {k: tuple(v) if isinstance(v, list | tuple) else v for k, v in defaults.items()}
    assert lib.pop("model_config") is None
    adam = inspect.signature(torch.optim.Adam).parameters  # the library's default optimizer
    assert app.pop("optimizer_cls") is lib.pop("optimizer_cls") is torch.optim.Adam
    assert app.pop("optimizer_config") == {
        "lr": None,  # null: the library's default, checked next
        "eps": adam["eps"].default,
        "weight_decay": adam["weight_decay"].default,
    }
    assert built.optimizer_kwargs["lr"] == library.optimizer_kwargs["lr"] == 1e-3
    assert lib.pop("optimizer_config") is None
    assert app.pop("device") == lib.pop("device") == "auto"
    assert app.pop("env_config") == {k: p.default for k, p in built.env_cls.params.items()}
    assert lib.pop("env_config") is None  # the env's defaults: the same values
    assert app == lib
    # Built, both fill what they leave unset from the env's tuned hyperparameters (CartPole's).
    from rl8.algorithms.config import ENV_TUNABLE_FIELDS
    from rl8.env import env_hyperparameters

    tuned = env_hyperparameters(built.env_cls)
    assert tuned["horizon"] == 64 != TrainConfig(built.env_cls).horizon  # not the library's 32
    app_cfg = built.build(tracker=None).algorithm.config
    lib_cfg = library.build(tracker=None).algorithm.config
    for name in ENV_TUNABLE_FIELDS:
        assert (
            getattr(app_cfg, name)
            == getattr(lib_cfg, name)
            == tuned.get(name, getattr(TrainConfig(built.env_cls), name))
        ), name
    assert app_cfg.optimizer_kwargs["lr"] == lib_cfg.optimizer_kwargs["lr"] == tuned["lr"]


def test_model_lstm_alone_picks_the_recurrent_trainer(compose) -> None:
    from rl8 import RecurrentTrainer

    trainer = build(compose("model=lstm", *NO_MLFLOW)).train_config.build(tracker=None)
    assert isinstance(trainer, RecurrentTrainer)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["trainer.gama=0.9"], "trainer.gama"),  # unknown key
        (["trainer.gamma=high"], "trainer.gamma"),  # wrong type
        (["env.config.gravty=1"], "env.config.gravty"),  # unknown env param (no +)
        (["stop.mode=up"], "stop.mode"),  # not an enum value
        (["optimizer.lrr=1"], "optimizer.lrr"),
    ],
)
def test_composition_rejects_unknown_keys_and_wrong_types(compose, overrides, key) -> None:
    with pytest.raises(ConfigCompositionException) as e:
        compose(*overrides)
    assert key in f"{e.value} {e.value.__cause__}"


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["trainer.gamma=1.5"], "trainer.gamma"),
        (["trainer.clip_param=0"], "trainer.clip_param"),
        (["trainer.num_envs=0"], "trainer.num_envs"),
        (["trainer.sgd_minibatch_size=0"], "trainer.sgd_minibatch_size"),
        (["model=lstm", "trainer.seq_len=5"], "trainer.seq_len=5 is invalid: must divide horizon"),
        (["trainer.seq_len=4"], "trainer.seq_len"),
        (["+env.config.gravty=1"], "env.config"),
        (["env.config.length=-1"], "env.config"),
        (["env._target_=rl8.envs.NoSuchEnv"], "env._target_"),
        (["model._target_=no_such_module.Model"], "model._target_"),
        (["+model.config.width=3"], "model.config.width"),
        (["optimizer.lr=0"], "optimizer.lr"),
        (["+optimizer.momentum=0.9"], "optimizer.momentum"),
        (["stop.max_env_steps=-1"], "stop.max_env_steps"),
        (["stop.max_steps=2.5"], "stop.max_steps"),
        (["stop.max_seconds=0"], "stop.max_seconds"),
        (["stop.window=0"], "stop.window"),
        (["stop.metric=eval/returns/mean"], "stop.threshold"),
        (["eval.every=-1"], "eval.every"),
        (["checkpoint.every=-1"], "checkpoint.every"),
        (["checkpoint.every_s=-1"], "checkpoint.every_s"),
        (["checkpoint.every_s=nan"], "checkpoint.every_s"),
        (["+eval.env_config.gravity=5"], "eval.env_config"),
        (["trainer.horizons_per_env_reset=2", "eval.every=3"], "eval.every"),
        (["objective=[]"], "objective"),
        (["seed=-1"], "seed"),
        (["device=tpu"], "device"),
        (["env=cartpole", "schedule=pendulum_randomization"], "schedule"),
        (
            ["schedule=cartpole_curriculum", "trainer.horizons_per_env_reset=-1", "eval.every=10"],
            "trainer.horizons_per_env_reset",
        ),
        (["+stop.conditions=[{_target_: rl8.conditions.Nope}]"], "stop.conditions[0]"),
    ],
)
def test_validation_names_the_key(compose, overrides, key) -> None:
    cfg = compose(*NO_MLFLOW, *overrides)
    with pytest.raises(ConfigError) as e:
        build(cfg)
    message = str(e.value)
    assert key in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["objective=eval/rewards/meen", "eval.every=0", "stop.max_steps=50"],
            "objective='eval/rewards/meen' is not a stat of an evaluation "
            "(did you mean 'eval/rewards/mean'?)",
        ),
        (
            ["stop.metric=returns/maen", "stop.threshold=1", "stop.max_steps=50"],
            "stop.metric='returns/maen' is not a stat of a train step "
            "(did you mean 'returns/mean'?)",
        ),
    ],
)
def test_unknown_stat_names_fail_at_the_first_step(compose, tmp_path, overrides, message) -> None:
    cfg = compose(*NO_MLFLOW, *overrides)
    with pytest.raises(ConfigError, match=re.escape(message)):
        run(cfg, output_dir=tmp_path)
    # Failed at the first step: before its checkpoint (checkpoint.every=1), not after 50.
    assert "checkpoint.every=1" in NO_MLFLOW
    assert not (tmp_path / checkpoint.CHECKPOINT_NAME).exists()


@pytest.mark.parametrize(
    ("overrides", "steps"),
    [
        (["stop.metric=returns/mean", "stop.threshold=-1e12"], 1),
        (["stop.metric=returns/mean", "stop.threshold=-1e12", "stop.window=3"], 3),
        (["stop.max_env_steps=1.28e2"], 4),  # 4 steps of 4 envs x 8
        (["stop.metric=eval/returns/mean", "stop.threshold=-1e12", "eval.every=3"], 3),
        (["stop.metric=returns/mean", "stop.threshold=-1e12", "stop.mode=min"], 20),
        # Runs stop (and evaluate) on an env-reset boundary: step 4, not 3.
        (["trainer.horizons_per_env_reset=2", "eval.every=2", "stop.max_steps=3"], 4),
        # Stateful conditions see each evaluation once: 3 evaluations, 2 steps apart.
        (
            [
                "eval.every=2",
                "+stop.conditions=[{_target_: rl8.conditions.Plateaus, "
                "_args_: [eval/returns/mean], patience: 2, rtol: 1e9}]",
            ],
            6,
        ),
    ],
)
def test_stop_rules(compose, tmp_path, overrides, steps) -> None:
    cfg = compose(*NO_MLFLOW, "env=dummy", "stop.max_steps=20", *overrides)
    run(cfg, output_dir=tmp_path)
    ckpt = checkpoint.load(tmp_path / checkpoint.CHECKPOINT_NAME)
    assert ckpt["trainer"]["trainer"]["algorithm/steps"] == steps


def test_nan_losses_raise_diverged_error(compose, tmp_path) -> None:
    cfg = compose(*NO_MLFLOW, "env=dummy", "env.config.bounds=3e38")  # rewards overflow
    with pytest.raises(DivergedError, match="losses/"):
        run(cfg, output_dir=tmp_path)


def test_pruned_trial_saves_checkpoint_tags_run_and_reraises(
    compose, tmp_path, monkeypatch, mlflow_uri
) -> None:
    import optuna
    from mlflow.tracking import MlflowClient

    import rl8.train

    class PruningReporter:
        def report(self, value: float, step: int) -> None:
            raise optuna.TrialPruned(f"pruned at step {step}")

    monkeypatch.setattr(rl8.train, "_reporter", lambda cfg: PruningReporter())
    cfg = compose(*TINY, f"mlflow.tracking_uri={mlflow_uri}", "mlflow.experiment_name=pruned")
    with pytest.raises(optuna.TrialPruned):
        run(cfg, output_dir=tmp_path)
    assert (
        checkpoint.load(tmp_path / checkpoint.CHECKPOINT_NAME)["trainer"]["trainer"][
            "algorithm/steps"
        ]
        == 1
    )
    client = MlflowClient(tracking_uri=mlflow_uri)
    [mlflow_run] = client.search_runs([client.get_experiment_by_name("pruned").experiment_id])
    assert mlflow_run.data.tags["rl8.trial_state"] == "PRUNED"
    assert mlflow_run.info.status == "KILLED"


@pytest.mark.parametrize("bar", [True, False])
def test_progress_shows_a_bar_or_log_lines(bar, caplog, capsys) -> None:
    from rl8.progress import Progress

    caplog.set_level("INFO", logger="rl8.train")
    progress = Progress(1000, bar=bar, log_every_s=1e-9)
    progress.update(1, 500, {"returns/mean": 3.0, "rewards/mean": 0.5}, {"eval/returns/mean": 4})
    progress.close()
    if bar:
        err = capsys.readouterr().err
        assert "50%" in err
        assert "return=3, reward=0.5, eval return=4" in err
    else:
        assert "env steps 500/1,000 (50%) | return 3 | reward 0.5 | eval return 4" in caplog.text


def test_progress_shows_episode_returns_where_the_env_has_episodes(caplog) -> None:
    from rl8.progress import Progress

    caplog.set_level("INFO", logger="rl8.train")
    progress = Progress(1000, bar=False, log_every_s=1e-9)
    train = {"returns/mean": 32.0, "episodes/return_mean": 212.5, "episodes/length_mean": 212.5}
    progress.update(1, 500, train, {"eval/episodes/return_mean": 500.0})
    assert "| ep return 212.5 | ep length 212.5 | eval ep return 500 |" in caplog.text
    # An evaluation in which no episode ended shows its horizon return.
    progress.update(2, 600, train, {"eval/episodes/return_mean": math.nan, "eval/returns/mean": 32})
    assert "| eval return 32 |" in caplog.text


def test_same_seed_same_metrics_on_cpu(compose, tmp_path) -> None:
    def weights_and_eval(seed: int, out: Path) -> tuple[list[torch.Tensor], dict]:
        cfg = compose(*NO_MLFLOW, f"seed={seed}", "stop.max_steps=3")
        run(cfg, output_dir=out)
        ckpt = checkpoint.load(out / checkpoint.CHECKPOINT_NAME)
        stats = {k: v for k, v in ckpt["loop"]["last_eval"].items() if "profiling/" not in k}
        # NaN (no episode ended during the evaluation) compares equal to NaN here.
        stats = {k: "nan" if v != v else v for k, v in stats.items()}
        return list(ckpt["trainer"]["algorithm"]["model"].values()), stats

    w1, e1 = weights_and_eval(0, tmp_path / "a")
    w2, e2 = weights_and_eval(0, tmp_path / "b")
    w3, _ = weights_and_eval(1, tmp_path / "c")
    assert e1 == e2
    assert all(torch.equal(a, b) for a, b in zip(w1, w2, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(w1, w3, strict=True))


def test_resume_continues_counters_in_process(compose, tmp_path) -> None:
    run(compose(*NO_MLFLOW), output_dir=tmp_path)
    overrides = [f"resume={tmp_path}", "stop.max_steps=5"]
    run(compose(*NO_MLFLOW, *overrides), output_dir=tmp_path / "resumed", overrides=overrides)
    ckpt = checkpoint.load(tmp_path / checkpoint.CHECKPOINT_NAME)
    assert ckpt["trainer"]["trainer"]["algorithm/steps"] == 5
    assert not (tmp_path / "resumed" / checkpoint.CHECKPOINT_NAME).exists()


def test_resume_keeps_the_stored_config(compose, tmp_path) -> None:
    run(compose(*NO_MLFLOW), output_dir=tmp_path)
    ckpt = checkpoint.load(tmp_path / checkpoint.CHECKPOINT_NAME)
    cfg = compose(*NO_MLFLOW, f"resume={tmp_path}", "stop.max_steps=7", "trainer.gamma=0.5")
    merged = resume_config(cfg, ckpt["config"], ["stop.max_steps=7", f"resume={tmp_path}"])
    assert merged.stop.max_steps == 7
    assert merged.trainer.gamma == OmegaConf.create(ckpt["config"]).trainer.gamma
    with pytest.raises(ConfigError, match=r"\(trainer\.gamma: null -> 0\.5\)"):
        resume_config(cfg, ckpt["config"], ["trainer.gamma=0.5"])


def test_resume_accepts_the_original_overrides_unchanged(compose, tmp_path) -> None:
    original = ["trainer.gamma=0.9", "seed=3", "optimizer=sgd"]
    run(compose(*NO_MLFLOW, *original), output_dir=tmp_path)
    ckpt = checkpoint.load(tmp_path / checkpoint.CHECKPOINT_NAME)
    again = [*original, f"resume={tmp_path}", "stop.max_steps=4"]
    merged = resume_config(compose(*NO_MLFLOW, *again), ckpt["config"], again)
    assert (merged.trainer.gamma, merged.seed, merged.stop.max_steps) == (0.9, 3, 4)
    changed = [*again, "seed=4", "optimizer.lr=0.5"]
    with pytest.raises(ConfigError) as e:
        resume_config(compose(*NO_MLFLOW, *changed), ckpt["config"], changed)
    assert "(seed: 3 -> 4; optimizer.lr: 0.01 -> 0.5)" in str(e.value)


def test_checkpoint_is_atomic_and_loads_weights_only(tmp_path) -> None:
    path = tmp_path / "ckpt.pt"
    checkpoint.save(path, {"trainer": {"w": torch.ones(2)}, "rng": checkpoint.get_rng_state()})
    checkpoint.save(path, {"trainer": {"w": torch.zeros(2)}, "rng": checkpoint.get_rng_state()})
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temp files left behind
    assert torch.equal(torch.load(path, weights_only=True)["trainer"]["w"], torch.zeros(2))
    torch.save({"foo": 1}, tmp_path / "other.pt")
    with pytest.raises(ConfigError, match="not an rl8 checkpoint"):
        checkpoint.load(tmp_path / "other.pt")


def test_rng_state_round_trips() -> None:
    checkpoint.seed_everything(3)
    state = checkpoint.get_rng_state()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    checkpoint.seed_everything(4)
    checkpoint.set_rng_state(state)
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]


def test_eval_env_config_may_be_a_range_drawn_per_sub_env(compose, tmp_path) -> None:
    cfg = compose(
        *NO_MLFLOW,
        "env=cartpole",
        "trainer.num_envs=8",
        "trainer.horizon=8",
        "trainer.horizons_per_env_reset=1",
        "eval.every=1",
        "stop.max_steps=2",
        "+eval.env_config.length={distribution: uniform, mode: scaling, low: 0.5, high: 2.0}",
    )
    built = build(cfg)
    assert built.eval_schedule is not None
    drawn = built.eval_schedule.env_config(0, 8, "cpu", {"length": 0.5})
    assert drawn["length"].shape == (8,) and drawn["length"].unique().numel() > 1
    assert float(drawn["length"].min()) >= 0.25 and float(drawn["length"].max()) <= 1.0
    run(cfg, output_dir=tmp_path)
    bad = compose(
        *NO_MLFLOW,
        "env=cartpole",
        "trainer.horizons_per_env_reset=1",
        "eval.every=1",
        "+eval.env_config.length={distribution: uniform, low: 0.5, high: 200.0}",
    )
    with pytest.raises(ConfigError, match="length"):
        build(bad)
