"""Tests of rl8.randomization (domain-randomization schedules and curricula)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from rl8.env import Env
from rl8.randomization import Curriculum, ParamSchedule, Schedule
from rl8.specs import Param

CONF = Path(__file__).resolve().parent.parent / "conf" / "schedule"


class _Toy(Env):
    params = {
        "length": Param(0.5, 0.1, 2.0, "half pole length (m)"),
        "mass": Param(1.0, 0.01, 10.0, "mass (kg)"),
        "gain": Param(2.0, None, None, "unbounded gain"),
        "force": Param(10.0, 0.0, 100.0, "force (N)"),
        "delay": Param(4, 1, 64, "steps (whole number)", integer=True),
    }

    def reset(self, *, config=None):
        self._apply_config(config)
        return torch.zeros(self.num_envs, 1)


DEFAULTS = {k: p.default for k, p in _Toy.params.items()}


def _sched(params, curriculum=None, seed=0) -> Schedule:
    return Schedule.from_config({"params": params, "curriculum": curriculum, "seed": seed})


# -- progress by env steps ---------------------------------------------------------------


def test_step_schedule_is_piecewise_constant():
    s = _sched(
        {
            "force": {
                "distribution": "uniform",
                "low": 9.0,
                "high": 11.0,
                "points": [{"env_steps": 100, "high": 12.0}, {"env_steps": 200, "low": 5.0}],
            }
        }
    )
    at = {t: s.settings(t)["force"] for t in (0, 99, 100, 150, 199, 200, 10_000)}
    assert at[0] == at[99] == {"low": 9.0, "high": 11.0}  # own settings: implicit point at 0
    assert at[100] == at[150] == at[199] == {"low": 9.0, "high": 12.0}
    assert at[200] == at[10_000] == {"low": 5.0, "high": 11.0}  # merged over own settings


def test_linear_schedule_interpolates_and_holds_ends():
    p = ParamSchedule(
        "uniform",
        "scaling",
        interpolation="linear",
        points=[(1000, {"low": 1.0, "high": 1.0}), (3000, {"low": 0.5, "high": 2.0})],
    )
    s = Schedule({"length": p}, seed=0)
    assert s.settings(0)["length"] == {"low": 1.0, "high": 1.0}
    assert s.settings(2000)["length"] == pytest.approx({"low": 0.75, "high": 1.5})
    assert s.settings(2500)["length"] == pytest.approx({"low": 0.625, "high": 1.75})
    assert s.settings(9000)["length"] == {"low": 0.5, "high": 2.0}
    cfg = s.env_config(2000, 64, "cpu", DEFAULTS)
    assert cfg["length"].min() >= 0.5 * 0.75 and cfg["length"].max() <= 0.5 * 1.5
    assert s.metrics() == pytest.approx({"schedule/length/low": 0.75, "schedule/length/high": 1.5})


def test_constants_are_floats_and_apply_mode():
    s = _sched({"gain": 3.0, "mass": {"mode": "scaling", "value": 2.0}, "force": {"value": 7.0}})
    cfg = s.env_config(0, 8, "cpu", DEFAULTS)
    assert cfg == {"gain": 3.0, "mass": 2.0, "force": 7.0}
    _Toy(8).reset(config=cfg)


# -- sampling ----------------------------------------------------------------------------


def test_uniform_samples_per_env_within_bounds_and_different():
    s = _sched({"force": {"distribution": "uniform", "low": 5.0, "high": 15.0}})
    x = s.env_config(0, 1000, "cpu", DEFAULTS)["force"]
    assert isinstance(x, torch.Tensor) and x.shape == (1000,) and x.dtype == torch.float64
    assert x.min() >= 5.0 and x.max() <= 15.0
    assert x.unique().numel() > 990
    assert x.std() > 2.0  # uniform on [5, 15] has std ~2.9
    y = s.env_config(0, 1000, "cpu", DEFAULTS)["force"]
    assert not torch.equal(x, y)  # new draw at every reset


def test_additive_and_scaling_are_relative_to_defaults():
    s = _sched(
        {
            "force": {"distribution": "uniform", "mode": "additive", "low": -1.0, "high": 1.0},
            "length": {"distribution": "uniform", "mode": "scaling", "low": 0.5, "high": 2.0},
        }
    )
    defaults = {**DEFAULTS, "length": 0.8}  # e.g. the env's base config overrides a default
    cfg = s.env_config(0, 500, "cpu", defaults)
    assert cfg["force"].min() >= 9.0 and cfg["force"].max() <= 11.0
    assert cfg["length"].min() >= 0.4 and cfg["length"].max() <= 1.6
    assert cfg["length"].min() < 0.5 and cfg["length"].max() > 1.5
    with pytest.raises(ValueError, match=r"'force'.*additive.*defaults"):
        s.env_config(0, 4, "cpu", {"length": 0.5})


def test_loguniform_and_choice():
    s = _sched(
        {
            "mass": {"distribution": "loguniform", "low": 0.1, "high": 10.0},
            "force": {"distribution": "choice", "values": [1.0, 2.0, 5.0]},
        }
    )
    cfg = s.env_config(0, 4000, "cpu", DEFAULTS)
    m = cfg["mass"]
    assert m.min() >= 0.1 and m.max() <= 10.0
    frac_below_1 = (m < 1.0).double().mean().item()  # log-uniform: half below the geometric mean
    assert 0.45 < frac_below_1 < 0.55
    f = cfg["force"]
    assert set(f.unique().tolist()) == {1.0, 2.0, 5.0}
    assert s.metrics()["schedule/force/values_max"] == 5.0


def test_gaussian_clip_and_device():
    s = _sched({"force": {"distribution": "gaussian", "mean": 10.0, "std": 5.0, "clip": [8, 12]}})
    x = s.env_config(0, 2000, torch.device("cpu"), DEFAULTS)["force"]
    assert x.min() == 8.0 and x.max() == 12.0
    assert abs(x.mean().item() - 10.0) < 0.3


def test_same_seed_same_samples():
    params = {"mass": {"distribution": "uniform", "low": 0.5, "high": 2.0}}
    a = _sched(params, seed=3).env_config(0, 16, "cpu", DEFAULTS)["mass"]
    b = _sched(params, seed=3).env_config(0, 16, "cpu", DEFAULTS)["mass"]
    c = _sched(params, seed=4).env_config(0, 16, "cpu", DEFAULTS)["mass"]
    assert torch.equal(a, b) and not torch.equal(a, c)


# -- curriculum --------------------------------------------------------------------------


def _curriculum_schedule(patience=3) -> Schedule:
    return _sched(
        {"length": {"distribution": "uniform", "mode": "scaling", "low": 1.0, "high": 1.0}},
        {
            "metric": "returns/mean",
            "threshold": 0.9,
            "patience": patience,
            "stages": [
                {},
                {"length": {"low": 0.9, "high": 1.1}},
                {"length": {"low": 0.5, "high": 2.0}},
            ],
        },
    )


def test_curriculum_needs_consecutive_hits_and_resets_on_miss():
    s = _curriculum_schedule(patience=3)
    hit, miss = {"returns/mean": 0.95}, {"returns/mean": 0.5}
    assert not s.update(hit, 10) and not s.update(hit, 20) and s.stage == 0
    assert not s.update(miss, 30) and s.metrics()["schedule/hits"] == 0  # a miss resets
    assert not s.update(hit, 40) and not s.update(hit, 50) and s.stage == 0
    assert not s.update({"returns/mean": float("nan")}, 55)  # NaN is a miss
    s.update(hit, 60), s.update(hit, 70)
    assert not s.update({"other": 1.0}, 75)  # stats without the metric change nothing
    assert s.update({"returns/mean": 0.9}, 80)  # >= threshold, third consecutive hit
    assert s.stage == 1 and s.curriculum.advanced_at == [80]
    assert s.metrics()["schedule/length/low"] == 0.9
    assert s.metrics()["schedule/stage"] == 1.0
    for t in range(3):
        s.update(hit, 100 + t)
    assert s.stage == 2
    for t in range(10):
        s.update(hit, 200 + t)
    assert s.stage == 2  # the last stage is kept
    x = s.env_config(300, 1000, "cpu", DEFAULTS)["length"]
    assert x.min() >= 0.25 and x.max() <= 1.0 and x.min() < 0.3


def test_state_dict_round_trip_restores_stage_and_random_stream():
    s = _curriculum_schedule(patience=2)
    for t in range(3):
        s.update({"returns/mean": 1.0}, t)
    s.env_config(10, 8, "cpu", DEFAULTS)
    state = s.state_dict()
    expected = [s.env_config(20, 8, "cpu", DEFAULTS)["length"] for _ in range(2)]

    r = _curriculum_schedule(patience=2)
    r.load_state_dict(state)
    assert (r.stage, r.curriculum.hits, r.env_steps) == (1, 1, 10)
    got = [r.env_config(20, 8, "cpu", DEFAULTS)["length"] for _ in range(2)]
    assert all(torch.equal(a, b) for a, b in zip(expected, got))
    r.update({"returns/mean": 1.0}, 30)  # the restored hit counts toward patience
    assert r.stage == 2

    short = Schedule({"length": ParamSchedule(value=1.0)}, Curriculum([{}], threshold=0.0))
    with pytest.raises(ValueError, match="stage 1"):
        short.load_state_dict(state)


# -- validation --------------------------------------------------------------------------


def test_validate_accepts_a_good_schedule():
    s = _curriculum_schedule()
    s.validate(_Toy)
    _sched({"delay": {"distribution": "choice", "mode": "scaling", "values": [0.5, 2]}}).validate(
        _Toy
    )
    _sched({"gain": {"distribution": "gaussian", "mean": 0.0, "std": 1.0}}).validate(_Toy)


@pytest.mark.parametrize(
    ("params", "curriculum", "match"),
    [
        ({"lenght": 1.0}, None, r"'lenght' is not a parameter of _Toy; known: delay, force, gain"),
        (
            {"length": {"distribution": "uniform", "low": 0.1, "high": 2.5}},
            None,
            r"'length'.*\[0.1, 2.5\].*valid range \[0.1, 2.0\]",
        ),
        (  # scaling is checked against the default: 0.5 * 5 = 2.5 > 2
            {"length": {"distribution": "uniform", "mode": "scaling", "low": 1, "high": 5}},
            None,
            r"'length'.*scaling, default 0.5",
        ),
        (  # a later point goes out of bounds
            {
                "force": {
                    "distribution": "uniform",
                    "mode": "additive",
                    "interpolation": "linear",
                    "points": [[0, {"low": 0, "high": 0}], [1000, {"low": -20, "high": 20}]],
                }
            },
            None,
            r"'force' \(at env_steps=1000\)",
        ),
        (  # a later curriculum stage goes out of bounds
            {"mass": {"distribution": "uniform", "low": 1.0, "high": 1.0}},
            {"threshold": 1, "stages": [{}, {"mass": {"low": 0.001}}]},
            r"'mass' \(at stage 1\)",
        ),
        (
            {"force": {"distribution": "gaussian", "mean": 10.0, "std": 1.0}},
            None,
            r"'force'.*unclipped gaussian.*add clip",
        ),
        (
            {"force": {"distribution": "gaussian", "mean": 10, "std": 1, "clip": [-1, 11]}},
            None,
            r"'force'.*\[-1, 11\]",
        ),
        (
            {"delay": {"distribution": "uniform", "low": 1, "high": 8}},
            None,
            r"'delay' takes whole numbers; use a constant or choice",
        ),
        (
            {"delay": {"distribution": "choice", "mode": "scaling", "values": [1, 1.1]}},
            None,
            r"'delay' takes whole numbers, but 1.1 gives 4.4",
        ),
    ],
)
def test_validate_rejects(params, curriculum, match):
    s = _sched(params, curriculum)
    with pytest.raises(ValueError, match=match):
        s.validate(_Toy)


@pytest.mark.parametrize(
    ("params", "curriculum", "match"),
    [
        (
            {"length": {"distribution": "uniform", "low": 2.0, "high": 1.0}},
            None,
            r"'length'.*low <= high",
        ),
        (
            {"length": {"distribution": "gauss"}},
            None,
            r"'length'.*'gauss' is unknown; use one of constant, uniform, loguniform, gaussian, choice",
        ),
        ({"length": {"mode": "relative"}}, None, r"'length'.*absolute, additive, scaling"),
        (
            {"length": {"distribution": "uniform", "low": 1, "high": 2, "mean": 1}},
            None,
            r"'length'.*'mean' is not a setting of a uniform.*low, high",
        ),
        ({"length": {"distribution": "uniform", "low": 1}}, None, r"'length'.*missing high"),
        ({"length": {"distribution": "loguniform", "low": 0, "high": 1}}, None, r"low > 0"),
        ({"length": {"distribution": "gaussian", "mean": 1, "std": -1}}, None, r"std >= 0"),
        ({"length": {"distribution": "choice", "values": []}}, None, r"non-empty"),
        ({"length": {"valeu": 1.0}}, None, r"'length'.*unknown param key\(s\) valeu"),
        (
            {"length": {"points": [{"env_steps": 10, "value": 1}, {"env_steps": 5, "value": 2}]}},
            None,
            r"'length'.*strictly increasing",
        ),
        (
            {"length": {"interpolation": "cubic"}},
            None,
            r"'length'.*use one of step, linear",
        ),
        (
            {"length": {"distribution": "uniform", "low": 1, "high": 1}},
            {"threshold": 1, "stages": [{"mass": {"low": 1}}]},
            r"stage 0 sets 'mass', which is not in params",
        ),
        (
            {"length": {"distribution": "uniform", "low": 1, "high": 1}},
            {"threshold": 1, "stages": [{"length": {"low": 3}}]},
            r"'length' \(at stage 0\).*low <= high",
        ),
        ({"length": 1.0}, {"threshold": 1, "patience": 0, "stages": [{}]}, r"patience"),
        ({"length": 1.0}, {"stages": [{}]}, r"curriculum config needs threshold"),
    ],
)
def test_invalid_schedules_fail_at_construction(params, curriculum, match):
    with pytest.raises(ValueError, match=match):
        _sched(params, curriculum)


def test_env_accepts_sampled_values_on_the_bounds():
    # low == high == the bound, in every mode: must pass the env's own bound check
    s = _sched(
        {
            "length": {"distribution": "uniform", "mode": "scaling", "low": 4.0, "high": 4.0},
            "mass": {"distribution": "loguniform", "low": 0.01, "high": 10.0},
            "force": {"distribution": "gaussian", "mean": 0, "std": 1e3, "clip": [0, 100]},
        }
    )
    s.validate(_Toy)
    _Toy(64).reset(config=s.env_config(0, 64, "cpu", DEFAULTS))


# -- config files ------------------------------------------------------------------------


def test_none_yaml_is_an_empty_schedule():
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    s = instantiate(OmegaConf.load(CONF / "none.yaml"), seed=0)
    assert isinstance(s, Schedule)
    assert s.env_config(0, 4, "cpu", {}) == {} and s.metrics() == {}
    assert not s.update({"returns/mean": 1.0}, 0)
    s.validate(_Toy)


def test_example_yamls_validate_against_builtin_envs():
    envs = pytest.importorskip("rl8.envs")
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    for name, env_cls in [
        ("cartpole_curriculum", envs.CartPole),
        ("pendulum_randomization", envs.Pendulum),
    ]:
        s = instantiate(OmegaConf.load(CONF / f"{name}.yaml").schedule, seed=0)
        s.validate(env_cls)
        defaults = {k: p.default for k, p in env_cls.params.items()}
        stages = 1 if s.curriculum is None else len(s.curriculum.stages)
        for stage in range(stages):
            if s.curriculum is not None:
                s.curriculum.stage = stage
            for env_steps in (0, 10**6, 10**8):
                cfg = s.env_config(env_steps, 8, "cpu", defaults)
                env_cls(8, config=cfg).reset(config=cfg)
        assert all(math.isfinite(v) for v in s.metrics().values())
