"""The :class:`Schedule` of an environment's parameters and its :class:`Curriculum`:
which settings are in force (points, stage), drawing ``env_config``, advancing
stages, and the state to resume."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from .bounds import check_bounds
from .param import ParamSchedule, Settings, _names, _number

__all__ = ["Curriculum", "Schedule"]


def _to_plain(x: Any) -> Any:
    """Turn OmegaConf containers (what Hydra passes) into plain dicts/lists."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        return x
    if isinstance(x, DictConfig | ListConfig):
        return OmegaConf.to_container(x, resolve=True)
    return x


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
            for where, setting in self.resolved(name):
                with _naming(name, where):
                    p.check_settings(setting)
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
        check_bounds(self, env_cls, defaults)

    def resolved(self, name: str) -> Iterator[tuple[str, Settings]]:
        """Every ``(where, settings)`` parameter ``name`` can be in: each point in each
        curriculum stage, the stage's overrides applied (``where`` says which, for
        error messages). Linear interpolation stays between points, so these are
        the extremes."""
        p = self.params[name]
        for i, overrides in enumerate(self._overrides):
            for at, setting in p.resolved_points():
                yield self._where(at, i, p), {**setting, **overrides.get(name, {})}

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
