"""Episode statistics on the device: the return and length of every finished
episode, and their means over the last 100 (SB3's ``ep_rew_mean`` and
``ep_len_mean``).

:class:`EpisodeStats` works on a whole collected horizon at once (rewards and
episode ends ``[N, T]``), with a fixed number of tensor ops per horizon and no
host sync: a segmented cumulative sum gives each finished episode's return,
the sub-environment's running episode carries over between horizons, and the
last ``window`` episodes are kept by a ``topk`` over their end times.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

__all__ = ["EpisodeStats"]


class _Window:
    """The returns and lengths of the last ``size`` finished episodes, each
    with a key ordering them by end time (``-1``: an empty slot)."""

    def __init__(self, size: int, device: torch.device) -> None:
        self.keys = torch.full((size,), -1, dtype=torch.int64, device=device)
        self.returns = torch.zeros(size, dtype=torch.float64, device=device)
        self.lengths = torch.zeros(size, dtype=torch.float64, device=device)

    def clear(self) -> None:
        self.keys.fill_(-1)

    def push(self, keys: torch.Tensor, returns: torch.Tensor, lengths: torch.Tensor) -> None:
        """Add episodes (``keys`` ``-1`` are not episodes); keep the latest."""
        all_keys = torch.cat((self.keys, keys))
        self.keys, index = torch.topk(all_keys, self.keys.numel(), sorted=False)
        self.returns = torch.cat((self.returns, returns))[index]
        self.lengths = torch.cat((self.lengths, lengths))[index]

    def stats(self, prefix: str) -> dict[str, torch.Tensor]:
        valid = self.keys >= 0
        count = valid.sum()
        n = count.clamp_min(1).to(torch.float64)
        nan = torch.tensor(float("nan"), dtype=torch.float64, device=count.device)
        return {
            f"{prefix}return_mean": torch.where(count > 0, (self.returns * valid).sum() / n, nan),
            f"{prefix}length_mean": torch.where(count > 0, (self.lengths * valid).sum() / n, nan),
            f"{prefix}count": count,
        }


class EpisodeStats:
    """Returns and lengths of the episodes of ``num_envs`` sub-environments.

    Two windows of the last finished episodes are kept: ``window`` of them for
    training collects, and ``max(window, num_envs)`` for evaluation collects
    (room for one episode of every sub-environment). An episode belongs to the
    window of the collect it ends in.

    Args:
        num_envs: Sub-environments ``N``.
        device: Device of every tensor.
        window: Finished episodes the means are taken over (default 100, as SB3).
    """

    def __init__(self, num_envs: int, device: torch.device, window: int = 100) -> None:
        self.num_envs = num_envs
        self.device = device
        #: Return and length so far of each sub-environment's running episode.
        self.running_return = torch.zeros(num_envs, dtype=torch.float64, device=device)
        self.running_length = torch.zeros(num_envs, dtype=torch.int64, device=device)
        self.windows = {
            "train": _Window(window, device),
            "eval": _Window(max(window, num_envs), device),
        }
        #: Steps seen per sub-environment, orders episodes by end time.
        self._clock = 0

    def reset(self) -> None:
        """The environment was reset: running episodes end uncounted."""
        self.running_return.zero_()
        self.running_length.zero_()

    def update(self, rewards: torch.Tensor, done: torch.Tensor, *, window: str = "train") -> None:
        """Account one horizon.

        Args:
            rewards: ``[N, T]`` rewards of every step.
            done: ``[N, T]`` bool, where step ``t`` ended an episode.
            window: ``"train"`` or ``"eval"``, the window finished episodes go to.
        """
        n, t = rewards.shape
        steps = torch.arange(t, device=self.device)
        # Index of the last episode end at or before each step (-1: none this horizon),
        # and before it: a step's episode started after that.
        last_end = torch.cummax(torch.where(done, steps, -1), dim=1).values
        prev_end = torch.cat((torch.full((n, 1), -1, device=self.device), last_end[:, :-1]), 1)
        # Segmented cumulative sum: return since the previous end (plus the carried
        # return of the episode running at the start of the horizon).
        csum = torch.cumsum(rewards.to(torch.float64), dim=1)
        before = torch.gather(csum, 1, prev_end.clamp_min(0))
        first = prev_end < 0
        returns = csum - torch.where(first, 0.0, before)
        returns = returns + torch.where(first, self.running_return.unsqueeze(1), 0.0)
        lengths = steps - prev_end + torch.where(first, self.running_length.unsqueeze(1), 0)
        # Episode end times order the window; keys of steps that end none are -1.
        keys = (self._clock + steps) * n + torch.arange(n, device=self.device).unsqueeze(1)
        keys = torch.where(done, keys, -1)
        self.windows[window].push(keys.flatten(), returns.flatten(), lengths.flatten().double())
        # returns/lengths[:, t] are those of the episode running at step t, so far:
        # the one running at the end of the horizon carries over, unless it ended there.
        self.running_return = torch.where(done[:, -1], 0.0, returns[:, -1])
        self.running_length = torch.where(done[:, -1], 0, lengths[:, -1])
        self._clock += t

    def stats(self, window: str = "train", prefix: str = "episodes/") -> dict[str, torch.Tensor]:
        """``<prefix>return_mean``, ``length_mean`` (NaN before the first
        finished episode) and ``count`` over ``window``'s last episodes, as
        0-dim tensors."""
        return self.windows[window].stats(prefix)

    def clear(self, window: str) -> None:
        """Forget the episodes in ``window`` (e.g. before an evaluation)."""
        self.windows[window].clear()

    def state_dict(self) -> dict[str, Any]:
        """The finished episodes of both windows (CPU tensors) and the clock;
        running episodes are not kept (a restored environment restarts)."""
        return {
            "clock": self._clock,
            **{
                name: {"keys": w.keys.cpu(), "returns": w.returns.cpu(), "lengths": w.lengths.cpu()}
                for name, w in self.windows.items()
            },
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`; running episodes restart."""
        self.reset()
        self._clock = int(state["clock"])
        for name, w in self.windows.items():
            saved = state[name]
            if saved["keys"].numel() != w.keys.numel():
                continue  # another num_envs: the eval window's size differs
            w.keys = saved["keys"].to(self.device)
            w.returns = saved["returns"].to(self.device)
            w.lengths = saved["lengths"].to(self.device)
