"""How one environment parameter is drawn: a distribution, a mode, and points that
move the distribution's settings over training (:class:`ParamSchedule`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch

__all__ = [
    "DISTRIBUTIONS",
    "INTERPOLATIONS",
    "MODES",
    "Distribution",
    "Interpolation",
    "Mode",
    "ParamSchedule",
    "Settings",
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


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"'{key}' must be a number, got {value!r}.")
    return float(value)


def _one_of(what: str, name: str, known: Sequence[str]) -> None:
    if name not in known:
        raise ValueError(f"{what} '{name}' is unknown; use one of {_names(known)}.")


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
        _one_of("distribution", distribution, list(DISTRIBUTIONS))
        _one_of("mode", mode, MODES)
        _one_of("interpolation", interpolation, INTERPOLATIONS)
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
