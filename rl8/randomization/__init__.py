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

Modules: :mod:`.param` (:class:`ParamSchedule`, one parameter's distribution,
mode and points), :mod:`.schedule` (:class:`Schedule` and :class:`Curriculum`)
and :mod:`.bounds` (the checks against an environment's valid ranges).
"""

from .param import (
    DISTRIBUTIONS,
    INTERPOLATIONS,
    MODES,
    Distribution,
    Interpolation,
    Mode,
    ParamSchedule,
    Settings,
)
from .schedule import Curriculum, Schedule

__all__ = [
    "DISTRIBUTIONS",
    "INTERPOLATIONS",
    "MODES",
    "Curriculum",
    "Distribution",
    "Interpolation",
    "Mode",
    "ParamSchedule",
    "Schedule",
    "Settings",
]
