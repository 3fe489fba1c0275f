"""Built-in batched environments.

* :class:`CartPole`: gymnasium CartPole-v1 dynamics, infinite horizon,
  reward 0 on the failing step and an in-place reset (discrete actions).
* :class:`Pendulum`: gymnasium Pendulum-v1 swing-up, restarts every
  ``episode_steps`` steps (continuous torque).
* :class:`Memory`: recall a cue bit after ``delay`` steps; needs a recurrent
  policy (discrete actions).
"""

from .cartpole import CartPole
from .memory import Memory
from .pendulum import Pendulum

__all__ = ["CartPole", "Memory", "Pendulum"]
