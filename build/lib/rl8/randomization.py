"""Domain randomization and curricula: schedules of environment parameters.

A :class:`Schedule` maps training progress to the ``env_config`` passed to
``Trainer.step(env_config=...)``. It is called once per environment reset,
not per step::

    schedule = Schedule.from_config(cfg)        # or hydra.utils.instantiate(cfg, seed=seed)
    schedule.validate(env_cls)                  # ValueError naming a bad parameter
    defaults = {name: p.default for name, p in env_cls.params.items()}
    ...
    env_config = {**base_env_config, **schedule.env_config(env_steps, num_envs, device, defaults)}
    stats = trainer.step(env_config=env_config)
    schedule.update(stats, env_steps)           # advances the curriculum
    tracker.log_metrics(schedule.metrics(), step=env_steps)

Each parameter (:class:`ParamSchedule`) has

* a **distribution**, sampled independently for every sub-environment at each
  reset: ``constant`` (``value``), ``uniform`` (``low``, ``high``),
  ``loguniform`` (``low``, ``high``, both > 0), ``gaussian`` (``mean``,
  ``std``, optional ``clip: [low, high]``) or ``choice`` (``values``);
* a **mode** saying how the sample ``x`` becomes the parameter's value:
  ``absolute`` (``x``), ``additive`` (``default + x``) or ``scaling``
  (``default * x``), as in IsaacGymEnvs' randomization schema;
* optionally, **points** ``[(env_steps, settings), ...]`` that move the
  distribution's settings over training, held piecewise constant
  (``interpolation="step"``) or interpolated (``"linear"``). When the first
  point comes after 0 env steps, the parameter's own settings (if complete)
  form an implicit point at 0; otherwise the first point holds before it.
  After the last point the last one holds.

A :class:`Curriculum` adds stages: each stage overrides some settings of some
parameters, and the schedule advances to the next stage when a metric (any key
of the flat train-stats dict, e.g. ``returns/mean``) stays ``>= threshold`` for
``patience`` consecutive :meth:`Schedule.update` calls.

Settings resolve as: the parameter's own settings, then the current point's
(or interpolated points') settings, then the current stage's overrides.

YAML shape (Hydra config group ``conf/schedule``)::

    _target_: rl8.randomization.Schedule.from_config
    params:
      gravity: 9.81                                   # constant, absolute
      length: {distribution: uniform, mode: scaling, low: 1.0, high: 1.0}
      m:
        distribution: loguniform
        mode: scaling
        interpolation: linear
        points:
          - {env_steps: 0, low: 1.0, high: 1.0}
          - {env_steps: 1000000, low: 0.5, high: 2.0}
    curriculum:
      metric: rewards/mean
      threshold: 0.99
      patience: 3
      stages:
        - {length: {low: 0.9, high: 1.1}}
        - {length: {low: 0.5, high: 2.0}}

Random values are ``float64`` tensors of shape ``[num_envs]`` (so that a value
on a parameter's bound passes the environment's bound check exactly; the
environment casts to its own dtype), drawn on the CPU from a
``torch.Generator`` seeded by ``seed`` (the same stream on every device) with
one vectorized call per parameter, then moved to ``device``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import torch

__all__ = [
    "DISTRIBUTIONS",
    "INTERPOLATIONS",
    "MODES",
    "Curriculum",
    "ParamSchedule",
    "Schedule",
]

Distribution = Literal["constant", "uniform", "loguniform", "gaussian", "choice"]
Mode = Literal["absolute", "additive", "scaling"]
Interpolation = Literal["step", "linear"]
#: A distribution's settings: key -> a float, or a tuple of floats (``clip``, ``values``).
Settings = dict[str, Any]

#: Distribution name -> (required setting keys, optional setting keys).
DISTRIBUTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "constant": (("value",), ()),
    "uniform": (("low", "high"), ()),
    "loguniform": (("low", "high"), ()),
    "gaussian": (("mean", "std"), ("clip",)),
    "choice": (("values",), ()),
}
MODES: tuple[str, ...] = ("absolute", "additive", "scaling")
INTERPOLATIONS: tuple[str, ...] = ("step", "linear")
_LIST_KEYS = ("clip", "values")


def _names(names: Sequence[str]) -> str:
    return ", ".join(names) if names else "none"


def _to_plain(x: Any) -> Any:
    """Turn OmegaConf containers (what Hydra passes) into plain dicts/lists."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        return x
    if isinstance(x, DictConfig | ListConfig):
        return OmegaConf.to_container(x, resolve=True)
    return x


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"'{key}' must be a number, got {value!r}.")
    return float(value)


class ParamSchedule:
    """How one environment parameter is drawn, and how that changes with env steps.

    Args:
        distribution: ``constant`` (``value``), ``uniform`` (``low``, ``high``),
            ``loguniform`` (``low``, ``high``; both > 0), ``gaussian``
            (``mean``, ``std``, optional ``clip=(low, high)``) or ``choice``
            (``values``). Default ``constant``.
        mode: ``absolute`` (the sample is the value), ``additive``
            (``default + sample``) or ``scaling`` (``default * sample``).
            Default ``absolute``.
        value, low, high, mean, std, clip, values: The distribution's settings
            (in the parameter's unit for ``absolute``/``additive``, a factor for
            ``scaling``). May be left out when every point (or every curriculum
            stage) gives them.
        points: ``[(env_steps, settings), ...]`` with strictly increasing
            ``env_steps`` (environment steps, summed over sub-environments as
            in ``stats["env/steps"]``); each ``settings`` dict is merged over
            the settings above. A point may also be a dict with an
            ``env_steps`` key (the YAML form). When the first point comes after
            0 and the settings above are complete, they form an implicit point
            at 0 (for ``linear``, a ramp from them); otherwise the first point
            holds before it. Default: no points.
        interpolation: ``step`` (piecewise constant: the last point at or
            before the current env steps) or ``linear`` (interpolate between the
            two surrounding points; needs the same keys, and list lengths, at
            every point). Default ``step``.

    Raises:
        ValueError: unknown distribution, mode or interpolation (the accepted
            names are listed), a setting the distribution doesn't take, a
            non-number, or unsorted points. Completeness and consistency
            (``low <= high``, ``std >= 0``, ...) are checked by
            :class:`Schedule`, which knows the curriculum's overrides.
    """

    def __init__(
        self,
        distribution: Distribution = "constant",
        mode: Mode = "absolute",
        *,
        value: float | None = None,
        low: float | None = None,
        high: float | None = None,
        mean: float | None = None,
        std: float | None = None,
        clip: Sequence[float] | None = None,
        values: Sequence[float] | None = None,
        points: Sequence[tuple[int, Mapping[str, Any]] | Mapping[str, Any]] | None = None,
        interpolation: Interpolation = "step",
    ) -> None:
        if distribution not in DISTRIBUTIONS:
            raise ValueError(
                f"distribution '{distribution}' is unknown; use one of {_names(list(DISTRIBUTIONS))}."
            )
        if mode not in MODES:
            raise ValueError(f"mode '{mode}' is unknown; use one of {_names(MODES)}.")
        if interpolation not in INTERPOLATIONS:
            raise ValueError(
                f"interpolation '{interpolation}' is unknown; use one of {_names(INTERPOLATIONS)}."
            )
        self.distribution: str = distribution
        self.mode: str = mode
        self.interpolation: str = interpolation
        given = {
            "value": value,
            "low": low,
            "high": high,
            "mean": mean,
            "std": std,
            "clip": clip,
            "values": values,
        }
        self.settings: Settings = self.parse_settings(
            {k: v for k, v in given.items() if v is not None}
        )
        self.points: list[tuple[int, Settings]] = []
        for point in points or []:
            if isinstance(point, Mapping):
                point = dict(point)
                if "env_steps" not in point:
                    raise ValueError(f"point {point} needs an 'env_steps' key.")
                at: Any = point.pop("env_steps")
                setting: Mapping[str, Any] = point
            else:
                try:
                    at, setting = point
                except (TypeError, ValueError):
                    raise ValueError(
                        f"point {point!r} must be (env_steps, settings) or "
                        "{env_steps: N, <settings>}."
                    ) from None
            at_f = _number("env_steps", at)
            if at_f < 0 or at_f != int(at_f):
                raise ValueError(f"point env_steps must be an integer >= 0, got {at!r}.")
            if self.points and int(at_f) <= self.points[-1][0]:
                raise ValueError(
                    f"points must have strictly increasing env_steps, got {int(at_f)} "
                    f"after {self.points[-1][0]}."
                )
            self.points.append((int(at_f), {**self.settings, **self.parse_settings(setting)}))
        required = DISTRIBUTIONS[distribution][0]
        if self.points and self.points[0][0] > 0 and all(k in self.settings for k in required):
            # The parameter's own settings hold from 0 env steps to the first point.
            self.points.insert(0, (0, dict(self.settings)))
        if interpolation == "linear":
            if len(self.points) < 2:
                raise ValueError("interpolation 'linear' needs at least 2 points.")
            first = self.points[0][1]
            for at_i, setting_i in self.points[1:]:
                if setting_i.keys() != first.keys() or any(
                    isinstance(v, tuple) and len(v) != len(setting_i[k]) for k, v in first.items()
                ):
                    raise ValueError(
                        f"interpolation 'linear' needs the same settings at every point; "
                        f"the point at env_steps={at_i} differs from the first one."
                    )

    # -- settings ---------------------------------------------------------------------------

    def parse_settings(self, setting: Mapping[str, Any] | float) -> Settings:
        """Check keys and types of a partial settings dict (a bare number means
        ``{"value": number}``). Does not check completeness or consistency."""
        if not isinstance(setting, Mapping):
            if self.distribution != "constant":
                required = DISTRIBUTIONS[self.distribution][0]
                raise ValueError(
                    f"got the number {setting!r}, but a {self.distribution} distribution "
                    f"takes settings {_names(required)}."
                )
            setting = {"value": setting}
        required, optional = DISTRIBUTIONS[self.distribution]
        out: Settings = {}
        for key, v in setting.items():
            if key not in required + optional:
                raise ValueError(
                    f"'{key}' is not a setting of a {self.distribution} distribution; "
                    f"it takes {_names(required + optional)}."
                )
            if key in _LIST_KEYS:
                if isinstance(v, str) or not isinstance(v, Sequence):
                    raise ValueError(f"'{key}' must be a list of numbers, got {v!r}.")
                out[key] = tuple(_number(key, x) for x in v)
            else:
                out[key] = _number(key, v)
        return out

    def check_settings(self, setting: Settings) -> None:
        """Raise ``ValueError`` when complete settings are missing a key or invalid."""
        required, _ = DISTRIBUTIONS[self.distribution]
        missing = [k for k in required if k not in setting]
        if missing:
            raise ValueError(
                f"a {self.distribution} distribution needs {_names(required)}; "
                f"missing {_names(missing)}."
            )
        values = [v for v in setting.values() if not isinstance(v, tuple)]
        values += [x for v in setting.values() if isinstance(v, tuple) for x in v]
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"settings must be finite numbers, got {setting}.")
        if self.distribution in ("uniform", "loguniform") and setting["low"] > setting["high"]:
            raise ValueError(
                f"{self.distribution} needs low <= high, got low={setting['low']}, high={setting['high']}."
            )
        if self.distribution == "loguniform" and setting["low"] <= 0:
            raise ValueError(f"loguniform needs low > 0, got low={setting['low']}.")
        if self.distribution == "gaussian":
            if setting["std"] < 0:
                raise ValueError(f"gaussian needs std >= 0, got std={setting['std']}.")
            clip = setting.get("clip")
            if clip is not None and (len(clip) != 2 or clip[0] > clip[1]):
                raise ValueError(f"gaussian clip must be [low, high] with low <= high, got {clip}.")
        if self.distribution == "choice" and not setting["values"]:
            raise ValueError("choice needs a non-empty list of values.")

    def settings_at(self, env_steps: int, override: Mapping[str, Any] | None = None) -> Settings:
        """The settings in force at ``env_steps``, with ``override`` (a
        curriculum stage's settings, already parsed) applied on top."""
        if not self.points:
            setting = dict(self.settings)
        elif env_steps <= self.points[0][0]:
            setting = dict(self.points[0][1])
        elif env_steps >= self.points[-1][0]:
            setting = dict(self.points[-1][1])
        else:
            i = max(j for j, (at, _) in enumerate(self.points) if at <= env_steps)
            (a_at, a), (b_at, b) = self.points[i], self.points[i + 1]
            if self.interpolation == "step":
                setting = dict(a)
            else:
                w = (env_steps - a_at) / (b_at - a_at)
                setting = {
                    k: tuple(_lerp(x, y, w) for x, y in zip(v, b[k], strict=True))
                    if isinstance(v, tuple)
                    else _lerp(v, b[k], w)
                    for k, v in a.items()
                }
        if override:
            setting.update(override)
        return setting

    def resolved_points(self) -> list[tuple[int, Settings]]:
        """``(env_steps, settings)`` at every point (one ``(0, settings)`` without
        points). Linear interpolation stays between neighbouring points, so
        these are the extremes of the schedule."""
        return list(self.points) if self.points else [(0, dict(self.settings))]

    # -- values -----------------------------------------------------------------------------

    def support(self, setting: Settings) -> tuple[float, float]:
        """Smallest and largest sample (before ``mode`` is applied); infinite
        for an unclipped gaussian with ``std > 0``."""
        d = self.distribution
        if d == "constant":
            return setting["value"], setting["value"]
        if d in ("uniform", "loguniform"):
            return setting["low"], setting["high"]
        if d == "choice":
            return min(setting["values"]), max(setting["values"])
        clip = setting.get("clip")
        if clip is not None:
            return clip[0], clip[1]
        if setting["std"] == 0:
            return setting["mean"], setting["mean"]
        return -math.inf, math.inf

    def apply_mode(self, x: Any, default: float | None) -> Any:
        """Turn a sample (number or tensor) into the parameter's value."""
        if self.mode == "absolute":
            return x
        if default is None:
            raise ValueError(f"mode '{self.mode}' needs the parameter's default value.")
        return default + x if self.mode == "additive" else default * x

    def sample(self, setting: Settings, num_envs: int, generator: torch.Generator) -> Any:
        """One value per sub-environment: a ``float64`` CPU tensor of shape
        ``[num_envs]``, or a float for a ``constant``. Samples lie within
        :meth:`support` (inclusive)."""
        d = self.distribution
        if d == "constant":
            return float(setting["value"])
        f64 = torch.float64
        if d == "choice":
            vals = torch.tensor(setting["values"], dtype=f64)
            return vals[torch.randint(len(vals), (num_envs,), generator=generator)]
        if d == "gaussian":
            x = torch.randn(num_envs, generator=generator, dtype=f64)
            x = x * setting["std"] + setting["mean"]
            clip = setting.get("clip")
            return x if clip is None else x.clamp(clip[0], clip[1])
        low, high = float(setting["low"]), float(setting["high"])
        u = torch.rand(num_envs, generator=generator, dtype=f64)
        if d == "loguniform":
            x = torch.exp(math.log(low) + (math.log(high) - math.log(low)) * u)
        else:
            x = low + (high - low) * u
        return x.clamp(low, high)

    def __repr__(self) -> str:
        return (
            f"ParamSchedule({self.distribution!r}, {self.mode!r}, settings={self.settings}, "
            f"points={self.points}, interpolation={self.interpolation!r})"
        )


def _lerp(a: float, b: float, w: float) -> float:
    if a == b:
        return a
    return min(max((1.0 - w) * a + w * b, min(a, b)), max(a, b))


class Curriculum:
    """Stages of parameter settings, advanced by a training metric.

    Training starts in stage 0. After each :meth:`update` where
    ``stats[metric] >= threshold`` the hit counter grows by one; a miss (or
    NaN) resets it to 0; ``patience`` consecutive hits advance to the next
    stage (and reset the counter). The last stage is kept for good. An update
    whose ``stats`` lack ``metric`` (e.g. train stats when the metric is an
    ``eval/...`` key) changes nothing.

    Args:
        stages: One dict per stage: parameter name -> settings that override
            the parameter's own (e.g. ``{"length": {"low": 0.9, "high": 1.1}}``;
            a bare number overrides a constant's ``value``). Every name must be
            declared in the schedule's ``params``.
        metric: Key of the flat stats dict. Default ``returns/mean``.
        threshold: The metric must be ``>=`` this to count as a hit.
        patience: Consecutive hits needed to advance (``>= 1``). Default 1.
    """

    def __init__(
        self,
        stages: Sequence[Mapping[str, Mapping[str, Any] | float]],
        *,
        metric: str = "returns/mean",
        threshold: float,
        patience: int = 1,
    ) -> None:
        if not stages:
            raise ValueError("curriculum needs at least one stage.")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"curriculum patience must be an integer >= 1, got {patience!r}.")
        if not isinstance(metric, str) or not metric:
            raise ValueError(
                f"curriculum metric must be a stats key such as 'returns/mean', got {metric!r}."
            )
        self.stages: list[dict[str, Any]] = []
        for i, stage in enumerate(stages):
            if not isinstance(stage, Mapping):
                raise ValueError(
                    f"curriculum stage {i} must map parameter names to settings, got {stage!r}."
                )
            self.stages.append(dict(stage))
        self.metric = metric
        self.threshold = _number("curriculum threshold", threshold)
        self.patience = patience
        self.stage = 0
        self.hits = 0
        #: Env steps at which each stage after the first was entered.
        self.advanced_at: list[int] = []

    def update(self, stats: Mapping[str, float], env_steps: int) -> bool:
        """Count a hit or a miss; returns ``True`` when the stage advanced."""
        if self.stage >= len(self.stages) - 1 or self.metric not in stats:
            return False
        value = float(stats[self.metric])
        self.hits = self.hits + 1 if value >= self.threshold else 0  # NaN is a miss
        if self.hits < self.patience:
            return False
        self.stage += 1
        self.hits = 0
        self.advanced_at.append(int(env_steps))
        return True

    def state_dict(self) -> dict[str, Any]:
        """Stage, hit counter and the env steps of each advance."""
        return {"stage": self.stage, "hits": self.hits, "advanced_at": list(self.advanced_at)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output.

        Raises:
            ValueError: the saved stage doesn't exist in this curriculum.
        """
        stage = int(state["stage"])
        if not 0 <= stage < len(self.stages):
            raise ValueError(
                f"checkpoint is at curriculum stage {stage}, but this curriculum has "
                f"{len(self.stages)} stages (0..{len(self.stages) - 1})."
            )
        self.stage = stage
        self.hits = int(state["hits"])
        self.advanced_at = [int(x) for x in state.get("advanced_at", [])]


class Schedule:
    """The randomization schedule of one environment's parameters.

    An empty schedule (no params) is a no-op: :meth:`env_config` and
    :meth:`metrics` return ``{}``; ``conf/schedule/none.yaml`` builds one.

    Args:
        params: Parameter name (a key of the env's ``params``) -> its schedule.
        curriculum: Optional stages advanced by :meth:`update`.
        seed: Seed of the generator that draws every random value; ``None``
            draws a fresh seed (stored in :attr:`seed`).

    Raises:
        ValueError: naming the parameter, when a curriculum stage sets an
            undeclared parameter or a setting the distribution doesn't take,
            or when any point/stage combination is incomplete or invalid
            (e.g. ``low > high``).
    """

    def __init__(
        self,
        params: Mapping[str, ParamSchedule] | None = None,
        curriculum: Curriculum | None = None,
        seed: int | None = None,
    ) -> None:
        self.params: dict[str, ParamSchedule] = dict(params or {})
        for name, p in self.params.items():
            if not isinstance(p, ParamSchedule):
                raise ValueError(
                    f"schedule param '{name}' must be a ParamSchedule, got {type(p).__name__} "
                    "(use Schedule.from_config for plain dicts)."
                )
        self.curriculum = curriculum
        # Parsed stage overrides: one {name: settings} per stage ([{}] without curriculum).
        self._overrides: list[dict[str, Settings]] = [{}]
        if curriculum is not None:
            self._overrides = []
            for i, stage in enumerate(curriculum.stages):
                parsed: dict[str, Settings] = {}
                for name, setting in stage.items():
                    if name not in self.params:
                        raise ValueError(
                            f"curriculum stage {i} sets '{name}', which is not in params; "
                            f"declare it there with its distribution and mode "
                            f"(params: {_names(sorted(self.params))})."
                        )
                    with _naming(name, f" in curriculum stage {i}"):
                        parsed[name] = self.params[name].parse_settings(setting)
                self._overrides.append(parsed)
        for name, p in self.params.items():
            for i, overrides in enumerate(self._overrides):
                for at, setting in p.resolved_points():
                    where = self._where(at, i, p)
                    with _naming(name, where):
                        p.check_settings({**setting, **overrides.get(name, {})})
        self.generator = torch.Generator()
        if seed is None:
            seed = self.generator.seed()
        else:
            self.generator.manual_seed(int(seed))
        self.seed: int = int(seed)
        self.env_steps = 0

    @classmethod
    def from_config(
        cls,
        config: Mapping[str, Any] | None = None,
        /,
        *,
        params: Mapping[str, Any] | None = None,
        curriculum: Mapping[str, Any] | None = None,
        seed: int | None = None,
    ) -> Schedule:
        """Build a schedule from plain (or OmegaConf) config.

        Usable as Hydra ``_target_: rl8.randomization.Schedule.from_config``
        (keyword arguments) or as ``Schedule.from_config(cfg_dict)``; keyword
        arguments override keys of ``config``. ``None``/``{}`` give an empty
        schedule.

        Args:
            config: Optional mapping with keys ``params``, ``curriculum``,
                ``seed`` (a ``_target_`` key is ignored).
            params: Name -> a number (a constant) or a dict of
                :class:`ParamSchedule` arguments.
            curriculum: Dict of :class:`Curriculum` arguments.
            seed: Generator seed; ``None`` for a fresh one.
        """
        cfg = dict(_to_plain(config) or {})
        cfg.pop("_target_", None)
        unknown = set(cfg) - {"params", "curriculum", "seed"}
        if unknown:
            raise ValueError(
                f"schedule config has unknown keys {_names(sorted(unknown))}; "
                "accepted: params, curriculum, seed."
            )
        params = _to_plain(params) if params is not None else cfg.get("params")
        curriculum = _to_plain(curriculum) if curriculum is not None else cfg.get("curriculum")
        seed = seed if seed is not None else cfg.get("seed")
        built: dict[str, ParamSchedule] = {}
        for name, spec in (params or {}).items():
            with _naming(name, ""):
                if isinstance(spec, Mapping):
                    built[name] = _call(ParamSchedule, spec, "param")
                else:
                    built[name] = ParamSchedule("constant", value=_number("value", spec))
        return cls(built, _call(Curriculum, curriculum, "curriculum") if curriculum else None, seed)

    # -- checks -----------------------------------------------------------------------------

    def validate(self, env_cls: Any, defaults: Mapping[str, float] | None = None) -> None:
        """Check the schedule against an environment class's ``params``.

        Every point and every curriculum stage is checked; a value that could
        leave ``env_cls.params[name]``'s ``[low, high]`` is rejected, so a
        gaussian on a bounded parameter needs ``clip``.

        Args:
            env_cls: An :class:`rl8.env.Env` subclass (anything with ``params``).
            defaults: The values ``additive``/``scaling`` apply to, when they
                differ from the params' defaults (e.g. the env's base config).

        Raises:
            ValueError: naming the parameter: unknown to the env, or able to go
                out of bounds (with the reachable range and the valid one), or
                not a whole number for an ``integer`` parameter (which takes
                ``constant`` or ``choice`` with ``step`` interpolation only).
        """
        env_name = getattr(env_cls, "__name__", str(env_cls))
        env_params = env_cls.params
        for name, p in self.params.items():
            if name not in env_params:
                raise ValueError(
                    f"schedule param '{name}' is not a parameter of {env_name}; "
                    f"known: {_names(sorted(env_params))}."
                )
            spec = env_params[name]
            default = float(defaults[name]) if defaults and name in defaults else spec.default
            integer = getattr(spec, "integer", False)
            if integer and (
                p.distribution not in ("constant", "choice") or p.interpolation != "step"
            ):
                raise ValueError(
                    f"schedule param '{name}' takes whole numbers; use a constant or choice "
                    f"distribution with step interpolation (got {p.distribution}, {p.interpolation})."
                )
            for i, overrides in enumerate(self._overrides):
                for at, setting in p.resolved_points():
                    setting = {**setting, **overrides.get(name, {})}
                    lo, hi = p.support(setting)
                    where = self._where(at, i, p)
                    if integer:
                        raw = setting.get("values", (setting.get("value"),))
                        bad = [v for v in raw if float(p.apply_mode(v, default)) % 1 != 0]
                        if bad:
                            raise ValueError(
                                f"schedule param '{name}'{where} takes whole numbers, but "
                                f"{bad[0]:g} gives {p.apply_mode(bad[0], default):g} ({p.mode})."
                            )
                    bounded = spec.low is not None or spec.high is not None
                    if math.isinf(lo) or math.isinf(hi):
                        if bounded:
                            raise ValueError(
                                f"schedule param '{name}'{where}: an unclipped gaussian can "
                                f"leave {env_name}'s valid range [{spec.low}, {spec.high}]; "
                                "add clip: [low, high]."
                            )
                        continue
                    a, b = p.apply_mode(lo, default), p.apply_mode(hi, default)
                    vmin, vmax = min(a, b), max(a, b)
                    if (spec.low is not None and vmin < spec.low) or (
                        spec.high is not None and vmax > spec.high
                    ):
                        how = "" if p.mode == "absolute" else f" ({p.mode}, default {default:g})"
                        raise ValueError(
                            f"schedule param '{name}'{where} can reach [{vmin:g}, {vmax:g}]{how}, "
                            f"outside {env_name}'s valid range [{spec.low}, {spec.high}]."
                        )

    def _where(self, at: int, stage: int, p: ParamSchedule) -> str:
        parts = []
        if p.points:
            parts.append(f"env_steps={at}")
        if self.curriculum is not None:
            parts.append(f"stage {stage}")
        return f" (at {', '.join(parts)})" if parts else ""

    # -- use --------------------------------------------------------------------------------

    @property
    def stage(self) -> int:
        """The current curriculum stage (0 without a curriculum)."""
        return self.curriculum.stage if self.curriculum is not None else 0

    def settings(self, env_steps: int | None = None) -> dict[str, Settings]:
        """Each parameter's distribution settings at ``env_steps`` (default:
        the env steps of the last :meth:`env_config`/:meth:`update` call) in
        the current stage."""
        t = self.env_steps if env_steps is None else int(env_steps)
        overrides = self._overrides[self.stage]
        return {name: p.settings_at(t, overrides.get(name)) for name, p in self.params.items()}

    def env_config(
        self,
        env_steps: int,
        num_envs: int,
        device: str | torch.device = "cpu",
        defaults: Mapping[str, float] | None = None,
    ) -> dict[str, torch.Tensor | float]:
        """Draw the ``env_config`` for the next environment reset.

        Args:
            env_steps: Training progress, in environment steps (``stats["env/steps"]``).
            num_envs: Number of sub-environments.
            device: Device of the returned tensors.
            defaults: Parameter name -> the value ``additive``/``scaling``
                apply to (the env's defaults, updated with its base config).
                Only needed for parameters in those modes.

        Returns:
            Parameter name -> a ``float64`` ``[num_envs]`` tensor (random
            distributions) or a float (constants).

        Raises:
            ValueError: a relative-mode parameter is missing from ``defaults``.
        """
        self.env_steps = int(env_steps)
        out: dict[str, torch.Tensor | float] = {}
        for name, setting in self.settings(env_steps).items():
            p = self.params[name]
            if p.mode != "absolute" and (defaults is None or name not in defaults):
                raise ValueError(
                    f"schedule param '{name}' has mode '{p.mode}' but defaults has no "
                    f"'{name}'; pass {{name: env_cls.params[name].default, ...}}."
                )
            x = p.sample(setting, num_envs, self.generator)
            if isinstance(x, torch.Tensor):
                x = x.to(device)
            out[name] = p.apply_mode(x, None if defaults is None else defaults.get(name))
        return out

    def update(self, stats: Mapping[str, float], env_steps: int) -> bool:
        """Feed one train (or eval) stats dict to the curriculum.

        Returns:
            ``True`` when the curriculum advanced to its next stage.
        """
        self.env_steps = int(env_steps)
        if self.curriculum is None:
            return False
        return self.curriculum.update(stats, env_steps)

    def metrics(self) -> dict[str, float]:
        """Current settings for logging: ``schedule/<param>/<setting>`` (e.g.
        ``schedule/length/low``; ``clip`` gives ``clip_low``/``clip_high``,
        ``values`` gives ``values_min``/``values_max``), plus
        ``schedule/stage`` and ``schedule/hits`` with a curriculum."""
        out: dict[str, float] = {}
        for name, setting in self.settings().items():
            for key, v in setting.items():
                if key == "clip":
                    out[f"schedule/{name}/clip_low"] = v[0]
                    out[f"schedule/{name}/clip_high"] = v[1]
                elif key == "values":
                    out[f"schedule/{name}/values_min"] = min(v)
                    out[f"schedule/{name}/values_max"] = max(v)
                else:
                    out[f"schedule/{name}/{key}"] = float(v)
        if self.curriculum is not None:
            out["schedule/stage"] = float(self.curriculum.stage)
            out["schedule/hits"] = float(self.curriculum.hits)
        return out

    def state_dict(self) -> dict[str, Any]:
        """Everything to resume: curriculum state, last env steps, seed and
        the generator's state (a ``uint8`` tensor; ``torch.save``-able)."""
        return {
            "seed": self.seed,
            "env_steps": self.env_steps,
            "generator": self.generator.get_state(),
            "curriculum": None if self.curriculum is None else self.curriculum.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s output (the random stream continues
        where it was saved).

        Raises:
            ValueError: the saved curriculum stage doesn't exist here.
        """
        if self.curriculum is not None and state.get("curriculum") is not None:
            self.curriculum.load_state_dict(state["curriculum"])
        self.seed = int(state["seed"])
        self.env_steps = int(state["env_steps"])
        self.generator.set_state(state["generator"])

    def __repr__(self) -> str:
        return f"Schedule(params={self.params}, stage={self.stage}, seed={self.seed})"


@contextmanager
def _naming(name: str, where: str) -> Iterator[None]:
    """Prefix ``ValueError`` messages raised inside with the parameter's name."""
    try:
        yield
    except ValueError as e:
        if str(e).startswith("schedule param '"):
            raise
        raise ValueError(f"schedule param '{name}'{where}: {e}") from None


def _call(cls: Any, kwargs: Any, what: str) -> Any:
    """``cls(**kwargs)`` with unknown or missing keys reported as ``ValueError``."""
    if not isinstance(kwargs, Mapping):
        raise ValueError(f"{what} config must be a mapping, got {kwargs!r}.")
    kwargs = dict(kwargs)
    kwargs.pop("_target_", None)
    sig = inspect.signature(cls)
    accepted = list(sig.parameters)
    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        raise ValueError(f"unknown {what} key(s) {_names(unknown)}; accepted: {_names(accepted)}.")
    missing = [
        k for k, prm in sig.parameters.items() if prm.default is prm.empty and k not in kwargs
    ]
    if missing:
        raise ValueError(f"{what} config needs {_names(missing)}.")
    return cls(**kwargs)
