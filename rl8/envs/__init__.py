"""Built-in batched environments.

* :class:`CartPole`: gymnasium CartPole-v1 dynamics, infinite horizon,
  reward 0 on the failing step and an in-place reset (discrete actions).
* :class:`Pendulum`: gymnasium Pendulum-v1 swing-up, restarts every
  ``episode_steps`` steps (continuous torque).
* :class:`Memory`: recall a cue bit after ``delay`` steps; needs a recurrent
  policy (discrete actions).
* :class:`Gymnasium`: any gymnasium environment (``id=``) or vector
  environment (``env_fn=``), stepped by gymnasium's vector API (needs
  ``pip install rl8[gymnasium]``; imported, with gymnasium, on first use).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .cartpole import CartPole
from .memory import Memory
from .pendulum import Pendulum

if TYPE_CHECKING:
    from .gymnasium import Gymnasium as Gymnasium

__all__ = ["CartPole", "Memory", "Pendulum"]  # not Gymnasium: `import *` must not need gymnasium


def __getattr__(name: str) -> Any:
    # Gymnasium is imported on first use, so `import rl8.envs` never imports gymnasium.
    if name == "Gymnasium":
        from .gymnasium import Gymnasium

        return Gymnasium
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
