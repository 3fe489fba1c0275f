"""Bound checks: can a :class:`~.schedule.Schedule` give an environment a value
outside its parameters' valid ranges (or a fraction to a whole-number parameter)?"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .param import _names

if TYPE_CHECKING:
    from .schedule import Schedule

__all__ = ["check_bounds"]


def check_bounds(
    schedule: Schedule, env_cls: Any, defaults: Mapping[str, float] | None = None
) -> None:
    """:meth:`Schedule.validate <.schedule.Schedule.validate>`: check every point in
    every curriculum stage against ``env_cls.params``."""
    env_name = getattr(env_cls, "__name__", str(env_cls))
    env_params = env_cls.params
    for name, p in schedule.params.items():
        if name not in env_params:
            raise ValueError(
                f"schedule param '{name}' is not a parameter of {env_name}; "
                f"known: {_names(sorted(env_params))}."
            )
        spec = env_params[name]
        default = float(defaults[name]) if defaults and name in defaults else spec.default
        integer = getattr(spec, "integer", False)
        if integer and (p.distribution not in ("constant", "choice") or p.interpolation != "step"):
            raise ValueError(
                f"schedule param '{name}' takes whole numbers; use a constant or choice "
                f"distribution with step interpolation (got {p.distribution}, {p.interpolation})."
            )
        for where, setting in schedule.resolved(name):
            lo, hi = p.support(setting)
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
