"""Tests of rl8's Optuna sweeper (``hydra/sweeper=optuna``).

Most tests run the tiny Hydra app ``tests/apps/quadratic/app.py`` in a
subprocess (its objective is a cheap deterministic function reporting through
the same :class:`TrialReporter` as ``rl8.train``); unit tests cover the search
space grammar and the reporter in-process.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from conftest import SEARCH_TINY, cartpole_search
from hydra.core.override_parser.overrides_parser import OverridesParser
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from rl8.optuna_sweeper.reporter import (
    ATTR_AGGREGATE,
    ATTR_PRUNER,
    ATTR_SEEDS,
    TrialReporter,
    aggregate,
    open_storage,
)
from rl8.optuna_sweeper.sweeper import SearchSpaceError, format_value, parse_search_space

REPO = Path(__file__).resolve().parents[1]
APP = REPO / "tests" / "apps" / "quadratic" / "app.py"

optuna.logging.set_verbosity(optuna.logging.WARNING)


# --------------------------------------------------------------------------- helpers
def run_app(tmp_path: Path, *overrides: str, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [
        sys.executable,
        str(APP),
        "-m",
        "+experiment=search",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        *overrides,
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["HYDRA_FULL_ERROR"] = "1"
    proc = subprocess.run(
        cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False
    )
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    return proc


def load(tmp_path: Path, storage: str | None = None, name: str = "quadratic") -> optuna.Study:
    spec = storage or str(tmp_path / "sweep" / "optuna.journal")
    return optuna.load_study(study_name=name, storage=open_storage(spec))


def calls(tmp_path: Path) -> list[list[str]]:
    path = tmp_path / "sweep" / "calls.log"
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def results(tmp_path: Path) -> dict:
    return yaml.safe_load((tmp_path / "sweep" / "optimization_results.yaml").read_text())


# --------------------------------------------------------------------------- unit tests
def test_search_space_grammar():
    space, fixed = parse_search_space(
        {
            "a": "interval(0.1, 0.3)",
            "b": "int(interval(1, 10))",
            "c": "range(1, 10, 2)",
            "d": "choice(mlp, lstm, 'x y', [64,64])",
            "e": "tag(log, interval(1e-5, 1e-3))",
            "f": "tag(log, int(interval(1, 128)))",
            "g": "range(0.1, 0.5, 0.1)",
            "h": "5",
        },
        ["a=0.2", "+z=choice(true,false)", "stop.max_env_steps=100"],
    )
    assert "a" not in space  # the command line fixed it
    assert fixed == ["h=5", "a=0.2", "stop.max_env_steps=100"]
    assert space["b"].distribution == IntDistribution(1, 10)
    assert space["c"].distribution == IntDistribution(1, 9, step=2)
    assert space["d"].distribution == CategoricalDistribution(["mlp", "lstm", "x y", "[64,64]"])
    assert space["e"].distribution == FloatDistribution(1e-5, 1e-3, log=True)
    assert space["f"].distribution == IntDistribution(1, 128, log=True)
    g = space["g"].distribution
    assert isinstance(g, FloatDistribution) and g.step == pytest.approx(0.1)
    assert g.high == pytest.approx(0.4)
    assert space["z"].override(True) == "+z=true"
    assert space["d"].override("x y") == "d='x y'"
    assert space["d"].override("[64,64]") == "d=[64,64]"
    assert space["d"].override("mlp") == "d=mlp"
    assert space["c"].grid_values() == [1, 3, 5, 7, 9]


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"trainer.clip_param": "interval(0.3, 0.1)"}, "trainer.clip_param"),
        ({"optimizer.lr": "tag(log, interval(0, 1e-3))"}, "optimizer.lr"),
        ({"trainer.gae_lambda": "interval(0.9,"}, "trainer.gae_lambda"),
        ({"n": "range(5, 1)"}, "n="),
        ({"n": "range(1, 5, 0)"}, "n="),
        ({"n": "tag(foo, interval(0, 1))"}, "n="),
    ],
)
def test_invalid_search_space_names_parameter(params, fragment):
    with pytest.raises(SearchSpaceError, match=fragment.replace(".", r"\.")):
        parse_search_space(params)


@pytest.mark.parametrize(
    "value", [0.1, 1e-05, 3, True, None, "mlp", "x y", "it's", "1", [64, 64], {"a": 1}]
)
def test_format_value_roundtrips(value):
    parsed = OverridesParser.create().parse_override(f"k={format_value(value)}")
    assert parsed.value() == value


def test_aggregate():
    assert aggregate([1.0, 2.0, 3.0, 4.0], "mean") == 2.5
    assert aggregate([1.0, 2.0, 3.0, 4.0], "median") == 2.5
    assert aggregate([1.0, 2.0, 3.0, 4.0], "q25") == pytest.approx(1.75)
    assert aggregate([3.0, 1.0], "min") == 1.0
    assert math.isnan(aggregate([1.0, math.nan], "max"))
    with pytest.raises(ValueError, match="aggregate"):
        aggregate([1.0], "q200")


def _study_with_trials(tmp_path: Path, seeds: int, how: str = "mean"):
    spec = str(tmp_path / "unit.journal")
    storage = open_storage(spec)
    study = optuna.create_study(storage=storage, study_name="unit")
    study_id = storage.get_study_id_from_name("unit")
    storage.set_study_system_attr(
        study_id,
        ATTR_PRUNER,
        {"_target_": "optuna.pruners.MedianPruner", "n_startup_trials": 1},
    )
    done = study.ask()  # a finished trial to compare against
    done.report(1.0, 1)
    done.report(0.1, 2)
    study.tell(done, 0.1)
    trial = study.ask()
    storage.set_trial_system_attr(trial._trial_id, ATTR_SEEDS, seeds)
    storage.set_trial_system_attr(trial._trial_id, ATTR_AGGREGATE, how)
    return spec, study, trial


def test_reporter_prunes_and_aggregates_seeds(tmp_path):
    spec, study, trial = _study_with_trials(tmp_path, seeds=2, how="mean")
    node = {"storage": spec, "study_name": "unit", "number": trial.number, "seed_index": 0}
    assert TrialReporter.from_config({"storage": None, "study_name": None, "number": None}) is None
    r0 = TrialReporter.from_config(node)
    r1 = TrialReporter.from_config({**node, "seed_index": 1})
    assert r0 is not None and r1 is not None
    r0.report(0.5, 1)  # better than the finished trial: goes on
    r1.report(1.0, 1)  # aggregate at step 1 = mean(0.5, 1.0)
    assert study.trials[trial.number].intermediate_values == {1: 0.75}
    with pytest.raises(optuna.TrialPruned):
        r0.report(3.0, 2)  # best so far (0.75) is worse than the median at step 2 (0.1)
    with pytest.raises(optuna.TrialPruned, match="seed-job 0"):
        r1.report(0.0, 2)  # the trial is already pruned
    r0.set_user_attr("note", "x")
    assert study.trials[trial.number].user_attrs["note"] == "x"


@pytest.mark.parametrize(
    "pruner",
    [
        {"_target_": "os.system", "command": "touch PWNED"},
        {"_target_": "builtins.exec", "source": "open('PWNED', 'w')"},
        {"_target_": "optuna.pruners.PatientPruner", "wrapped_pruner": {"_target_": "os.system"}},
    ],
)
def test_a_pruner_written_into_the_study_storage_is_not_built(tmp_path, monkeypatch, pruner):
    # Whoever can write the study's storage cannot make the jobs run code.
    monkeypatch.chdir(tmp_path)
    spec, _study, trial = _study_with_trials(tmp_path, seeds=1)
    storage = open_storage(spec)
    storage.set_study_system_attr(storage.get_study_id_from_name("unit"), ATTR_PRUNER, pruner)
    reporter = TrialReporter.from_config(
        {"storage": spec, "study_name": "unit", "number": trial.number, "seed_index": 0}
    )
    assert reporter is not None
    with pytest.raises(ValueError, match="refusing"):
        reporter.report(0.5, 1)
    assert not (tmp_path / "PWNED").exists()


# --------------------------------------------------------------------------- sweeps
def test_search_completes_and_records_every_trial(tmp_path):
    run_app(tmp_path, "hydra.sweeper.n_trials=4")
    study = load(tmp_path)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 4
    assert len(calls(tmp_path)) == 4
    for t in study.trials:
        assert set(t.params) == {"x", "y"}
        assert sorted(t.intermediate_values) == list(range(1, 9))
        assert t.user_attrs["overrides"] == [f"x={t.params['x']!r}", f"y={t.params['y']!r}"]
    attrs = study.user_attrs
    assert "+experiment=search" in attrs["command_line"]
    assert "x: 0.0" in attrs["base_config"] and "hydra:" not in attrs["base_config"]
    res = results(tmp_path)
    assert res["best_value"] == pytest.approx(study.best_value)
    assert res["best_config"] == study.best_params
    assert res["n_trials"] == {"COMPLETE": 4}
    # job dirs follow the experiment's subdir
    assert study.trials[3].user_attrs["job_dirs"] == [
        str(tmp_path / "sweep" / "trial_3" / "seed_0")
    ]


def test_resume_does_not_repeat_trials(tmp_path):
    storage = "sqlite:///study.db"  # relative: the sweeper makes it absolute for the jobs
    run_app(tmp_path, "hydra.sweeper.n_trials=2", f"hydra.sweeper.storage={storage}")
    first = {t.number: t.params for t in load(tmp_path, f"sqlite:///{tmp_path}/study.db").trials}
    run_app(tmp_path, "hydra.sweeper.n_trials=4", f"hydra.sweeper.storage={storage}")
    run_app(tmp_path, "hydra.sweeper.n_trials=4", f"hydra.sweeper.storage={storage}")  # no-op
    study = load(tmp_path, f"sqlite:///{tmp_path}/study.db")
    assert len(study.trials) == 4
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert sorted(int(c[0]) for c in calls(tmp_path)) == [0, 1, 2, 3]  # 4 jobs in total
    for number, params in first.items():
        assert study.trials[number].params == params
    # the resumed sampler does not replay the first invocation's samples
    assert study.trials[2].params != study.trials[0].params
    assert len(study.user_attrs["invocations"]) == 3


def test_resume_fails_stale_trials_of_a_dead_sweeper(tmp_path):
    import socket

    (tmp_path / "sweep").mkdir()
    storage = open_storage(str(tmp_path / "sweep" / "optuna.journal"))
    study = optuna.create_study(storage=storage, study_name="quadratic")
    stale = study.ask()  # left RUNNING by a sweeper that was killed
    dead_pid = 2**22 + 12345  # above the default pid_max: never alive
    storage.set_trial_system_attr(
        stale._trial_id, "rl8:owner", {"host": socket.gethostname(), "pid": dead_pid}
    )
    run_app(tmp_path, "hydra.sweeper.n_trials=2", "stop.max_steps=2")
    trials = load(tmp_path).trials
    assert trials[0].state == TrialState.FAIL and trials[0].user_attrs["interrupted"]
    assert [t.state for t in trials[1:]] == [TrialState.COMPLETE] * 2  # not counted


def test_pruned_trials_stop_early(tmp_path):
    run_app(
        tmp_path,
        "hydra.sweeper.n_trials=8",
        "stop.max_steps=10",
        "hydra/sweeper/sampler=random",
        "hydra.sweeper.pruner.n_startup_trials=2",
    )
    study = load(tmp_path)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert pruned and complete and len(pruned) + len(complete) == 8
    for t in complete:
        assert t.user_attrs["steps_used/0"] == 10
    for t in pruned:
        assert t.user_attrs["steps_used/0"] < 10
        assert len(t.intermediate_values) < 10
        assert t.value == t.intermediate_values[t.last_step]  # last reported value


def test_joblib_launcher_runs_trials_in_parallel_processes(tmp_path):
    run_app(
        tmp_path,
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.n_trials=4",
        "stop.max_steps=3",
    )
    study = load(tmp_path)
    assert len(study.trials) == 4
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    # reports came from the worker processes
    assert all(sorted(t.intermediate_values) == [1, 2, 3] for t in study.trials)
    jobs = calls(tmp_path)
    assert sorted(int(c[0]) for c in jobs) == [0, 1, 2, 3]
    sweeper_pid = study.trials[0].system_attrs["rl8:owner"]["pid"]
    assert all(int(c[5]) != sweeper_pid for c in jobs)  # jobs ran in worker processes


def test_failing_trials_do_not_stop_the_sweep(tmp_path):
    run_app(
        tmp_path,
        "hydra/sweeper/sampler=grid",
        "hydra.sweeper.params.x='choice(0.0,0.9)'",
        "hydra.sweeper.params.y='choice(0.0,-0.9)'",
        "fail_above=0.5",
        "nan_below=-0.5",
        "stop.max_steps=2",
    )
    study = load(tmp_path)
    by_params = {(t.params["x"], t.params["y"]): t for t in study.trials}
    assert len(by_params) == 4
    ok = by_params[(0.0, 0.0)]
    assert ok.state == TrialState.COMPLETE
    raised = by_params[(0.9, 0.0)]
    assert raised.state == TrialState.FAIL
    assert "RuntimeError" in raised.user_attrs["fail_reason"]
    assert "above fail_above" in raised.user_attrs["fail_reason"]
    nan = by_params[(0.0, -0.9)]
    assert nan.state == TrialState.FAIL and "non-finite" in nan.user_attrs["fail_reason"]
    assert by_params[(0.9, -0.9)].state == TrialState.FAIL
    assert results(tmp_path)["n_trials"] == {"COMPLETE": 1, "FAIL": 3}


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (["hydra.sweeper.params.y='interval(1.0,0.5)'"], "y=interval(1.0,0.5)"),
        (["hydra.sweeper.params.y='tag(log,interval(0.0,1.0))'"], "log interval needs low > 0"),
        (["+hydra.sweeper.params.nosuchkey='interval(0,1)'"], "nosuchkey"),
        (["hydra.sweeper.sampler._target_=optuna.samplers.NoSuchSampler"], "NoSuchSampler"),
        (
            ["+hydra.sweeper.n_trails=3"],
            "hydra.sweeper.n_trails is not a setting of rl8's Optuna sweeper (did you mean "
            "'n_trials'?)",
        ),
    ],
)
def test_invalid_search_space_fails_before_any_trial(tmp_path, overrides, fragment):
    proc = run_app(tmp_path, *overrides, check=False)
    assert proc.returncode != 0
    assert fragment in proc.stderr
    assert calls(tmp_path) == []
    assert not (tmp_path / "sweep" / "optuna.journal").exists()


@pytest.mark.skipif(
    __import__("importlib.util").util.find_spec("cmaes") is not None, reason="cmaes is installed"
)
def test_a_sampler_missing_its_package_fails_before_any_trial(tmp_path):
    proc = run_app(tmp_path, "hydra/sweeper/sampler=cmaes", check=False)
    assert proc.returncode == 1
    assert "CmaEsSampler needs the cmaes package: pip install cmaes" in proc.stderr
    assert calls(tmp_path) == [] and not (tmp_path / "sweep" / "optuna.journal").exists()


def test_seeds_per_trial_aggregates(tmp_path):
    run_app(
        tmp_path,
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.seeds_per_trial=2",
        "hydra.sweeper.aggregate=max",
        "seed=3",
        "stop.max_steps=3",
    )
    study = load(tmp_path)
    assert len(study.trials) == 2
    jobs = calls(tmp_path)
    assert sorted((int(c[0]), int(c[1]), int(c[2])) for c in jobs) == [
        (0, 0, 3),
        (0, 1, 4),
        (1, 0, 3),
        (1, 1, 4),
    ]
    for t in study.trials:
        assert t.state == TrialState.COMPLETE
        s0, s1 = t.user_attrs["seed_values"]
        assert s1 == pytest.approx(s0 + 0.01)  # seed 4 adds 0.01 to the objective
        assert t.value == pytest.approx(max(s0, s1))
        assert t.user_attrs["seeds"] == [3, 4]
        # intermediate values are the aggregate of both seed-jobs at each step
        for step, v in t.intermediate_values.items():
            per_seed = [t.system_attrs[f"rl8:seed{k}:step{step}"] for k in (0, 1)]
            assert v == pytest.approx(max(per_seed))


def test_custom_search_space(tmp_path):
    run_app(
        tmp_path,
        "hydra.sweeper.n_trials=6",
        "~hydra.sweeper.params.y",
        "hydra.sweeper.custom_search_space=space.conditional",
        "+hydra.sweeper.params.shape='choice(bowl,steep)'",  # a config group
        "hydra.sweeper.pruner=null",
        "hydra/sweeper/sampler=random",
        "stop.max_steps=2",
    )
    study = load(tmp_path)
    assert len(study.trials) == 6
    for t in study.trials:
        assert t.state == TrialState.COMPLETE
        if t.params["x"] > 0:
            assert "y_pos" in t.params
            assert f"y={t.params['y_pos']!r}" in t.user_attrs["overrides"]
        else:
            assert "y_pos" not in t.params and "y=-0.2" in t.user_attrs["overrides"]
    # the group choice is pasteable as a defaults-list override
    best = results(tmp_path)["best_config"]
    assert best["defaults"] == [{"override /shape": study.best_params["shape"]}]
    assert best["x"] == study.best_params["x"]


def test_multi_objective(tmp_path):
    run_app(
        tmp_path,
        "hydra.sweeper.n_trials=3",
        "hydra.sweeper.direction=[minimize,minimize]",
        "hydra/sweeper/sampler=nsgaii",
        "multi_objective=true",
        "stop.max_steps=2",
    )
    study = load(tmp_path)
    assert all(len(t.values) == 2 for t in study.trials)
    res = results(tmp_path)
    assert res["best_trials"] and all(len(b["values"]) == 2 for b in res["best_trials"])


def test_timeout_stops_launching_new_trials(tmp_path):
    run_app(tmp_path, "hydra.sweeper.n_trials=4", "hydra.sweeper.timeout=0.001")
    assert len(load(tmp_path).trials) == 1  # the first trial always runs


def test_mlflow_parent_run_and_plots(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    run_app(
        tmp_path,
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.mlflow=true",
        "hydra.sweeper.plots=true",
        f"mlflow.tracking_uri={uri}",
        "stop.max_steps=2",
    )
    sweep = tmp_path / "sweep"
    assert (sweep / "optimization_history.png").stat().st_size > 0
    assert (sweep / "param_importances.png").stat().st_size > 0
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("quadratic")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("rl8.role") == "sweep"]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert {"best.x", "best.y"} <= set(parent.data.params)
    assert "best_value" in parent.data.metrics
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"optimization_results.yaml", "optimization_history.png"} <= artifacts
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 2
    study = load(tmp_path)
    assert study.user_attrs["mlflow_parent_run_ids"] == [parent.info.run_id]


# --------------------------------------------------------------------------- real app
@pytest.mark.skipif(not (REPO / "rl8" / "train.py").exists(), reason="rl8/train.py not written yet")
def test_real_app_cartpole_search(tmp_path):
    cmd = cartpole_search(
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.plots=false",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        *SEARCH_TINY,
        f"mlflow.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["HYDRA_FULL_ERROR"] = "1"
    proc = subprocess.run(
        cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    study = optuna.load_study(
        study_name="cartpole_search",
        storage=open_storage(str(tmp_path / "sweep" / "optuna.journal")),
    )
    assert len(study.trials) == 2
    assert all(t.state == TrialState.COMPLETE for t in study.trials), [
        (t.state, t.user_attrs.get("fail_reason")) for t in study.trials
    ]
    assert set(study.trials[0].params) >= {
        "trainer.clip_param",
        "trainer.gae_lambda",
        "trainer.entropy_coeff",
        "optimizer.lr",
    }
    for t in study.trials:  # the app reported its evaluations to the trial
        assert sorted(t.intermediate_values) == [1, 2]
    assert (tmp_path / "sweep" / "optimization_results.yaml").exists()
    assert (tmp_path / "sweep" / "trial_1" / "seed_0").is_dir()


@pytest.mark.parametrize(
    ("space", "refused"),
    [
        ("trainer.gamma=interval(0.9, 1.5)", "'trainer.gamma=1.5'"),
        ("trainer.num_sgd_iters=int(interval(0, 4))", "'trainer.num_sgd_iters=0'"),
        ("optimizer.lr=choice(0.001, -1.0)", "'optimizer.lr=-1.0'"),
        ("trainer.vf_clip_param=range(1.0, 3.0, 0.5)", None),  # all valid: the sweep runs
    ],
)
def test_the_real_app_checks_every_bound_before_the_study_opens(tmp_path, space, refused):
    cmd = cartpole_search(
        space,
        "hydra.sweeper.n_trials=0",  # the check runs all the same; no trial
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "hydra.sweeper.mlflow=false",
    )
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    if refused is None:
        assert proc.returncode == 0, proc.stderr[-3000:]
        return
    assert proc.returncode == 1
    key = space.split("=")[0]
    assert f"{key}={space.split('=', 1)[1]}: the app refuses {refused}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "sweep" / "optuna.journal").exists()  # no study was opened


def test_a_job_that_cannot_track_stops_the_sweep_instead_of_failing_a_trial(tmp_path):
    (tmp_path / "not_a_dir").write_text("")
    cmd = cartpole_search(
        "hydra.sweeper.n_trials=3",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        f"mlflow.tracking_uri=sqlite:///{tmp_path / 'not_a_dir' / 'mlflow.db'}",
    )
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Trial 0: mlflow: cannot open an MLflow run" in proc.stderr
    assert "The sweep stops" in proc.stderr and "Traceback" not in proc.stderr
    (trial,) = load(tmp_path, name="cartpole_search").trials  # no second trial
    assert trial.state == TrialState.FAIL and trial.user_attrs["interrupted"] is True


def test_the_docs_command_line_search_space_works_and_a_non_mapping_is_named(tmp_path):
    # docs/optuna.md: python my_app.py -m hydra/sweeper=optuna 'hydra.sweeper.params={x: ...}'
    args = ["-m", "rl8.train", "-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=1"]
    args += ["stop.max_steps=2", "trainer.num_envs=4", "trainer.horizon=32", "mlflow.enabled=false"]
    args += [f"hydra.sweep.dir={tmp_path / 'sweep'}", "progress.bar=false"]
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}

    def sweep(params: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, *args, f"hydra.sweeper.params={params}"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
        )  # fmt: skip

    proc = sweep('{trainer.gamma: "interval(0.9, 0.99)"}')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Trial 0 COMPLETE" in proc.stdout + proc.stderr
    proc = sweep("gamma")
    assert proc.returncode != 0
    assert "hydra.sweeper.params must be a mapping" in proc.stderr
