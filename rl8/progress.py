"""Progress display of ``python -m rl8.train``.

On a terminal (and outside multiruns) a tqdm bar counts environment steps
against the stop budget and shows the mean episode return and length over
the last 100 episodes (for environments without episodes: the mean return
summed over a horizon and the mean per-step reward) and the throughput;
otherwise (a log file, CI, a multirun's parallel jobs) a log line is written
every ``log_every_s`` seconds.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

__all__ = ["Progress"]

log = logging.getLogger("rl8.train")


def _fmt(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.4g}"


class Progress:
    """A tqdm bar or periodic log lines.

    Args:
        total_env_steps: The env-step budget (``stop.max_env_steps``) or ``None``.
        initial_env_steps: Env steps already done (resume).
        bar: ``True``/``False`` forces the bar on/off; ``None`` shows it when
            stderr is a TTY and ``multirun`` is false.
        multirun: Whether the job is one of a multirun.
        log_every_s: Seconds between log lines (when there is no bar).
    """

    def __init__(
        self,
        total_env_steps: int | None,
        *,
        initial_env_steps: int = 0,
        bar: bool | None = None,
        multirun: bool = False,
        log_every_s: float = 10.0,
    ) -> None:
        self.total = total_env_steps
        self.log_every_s = log_every_s
        self.start_env_steps = initial_env_steps
        self.env_steps = initial_env_steps
        self.t0 = time.perf_counter()
        self.last_log = self.t0
        #: Latest (label, value) pairs shown: episode return and length, or
        #: the horizon return and per-step reward.
        self.shown: dict[str, float | None] = {}
        #: The latest evaluation's (label, value): episode return, else horizon return.
        self.eval_shown: tuple[str, float] | None = None
        if bar is None:
            bar = sys.stderr.isatty() and not multirun
        self.bar: Any = None
        if bar:
            from tqdm import tqdm

            try:
                columns = os.get_terminal_size(sys.stderr.fileno()).columns
            except (OSError, ValueError):
                columns = 0
            # A pty without a size (e.g. `script`) reports 0x0: tqdm would draw nothing.
            size: dict[str, Any] = (
                {"dynamic_ncols": True} if columns else {"ncols": 120, "nrows": 24}
            )
            self.bar = tqdm(
                total=total_env_steps,
                initial=initial_env_steps,
                unit=" trans",
                unit_scale=True,
                file=sys.stderr,
                desc="env steps",
                **size,
            )
            # Log records written while the bar is drawn go above it (tqdm.write),
            # instead of tearing its line.
            from tqdm.contrib.logging import logging_redirect_tqdm

            self._redirect: Any = logging_redirect_tqdm(loggers=[logging.getLogger()])
            self._redirect.__enter__()

    @property
    def rate(self) -> float:
        """Transitions per second since this progress started."""
        dt = time.perf_counter() - self.t0
        return (self.env_steps - self.start_env_steps) / dt if dt > 0 else 0.0

    def update(
        self,
        step: int,
        env_steps: int,
        stats: Mapping[str, float],
        eval_stats: Mapping[str, float] | None = None,
    ) -> None:
        """Record one trainer step (and its evaluation, if any)."""
        delta = env_steps - self.env_steps
        self.env_steps = env_steps
        if "episodes/return_mean" in stats:
            self.shown = {
                "ep return": stats["episodes/return_mean"],
                "ep length": stats.get("episodes/length_mean"),
            }
        else:
            self.shown = {"return": stats.get("returns/mean"), "reward": stats.get("rewards/mean")}
        if eval_stats:
            episodes = eval_stats.get("eval/episodes/return_mean", math.nan)
            if math.isfinite(episodes):
                self.eval_shown = ("eval ep return", episodes)
            elif "eval/returns/mean" in eval_stats:
                self.eval_shown = ("eval return", eval_stats["eval/returns/mean"])
        if self.bar is not None:
            self.bar.update(delta)
            post = {k: _fmt(v) for k, v in self.shown.items()}
            if self.eval_shown is not None:
                post[self.eval_shown[0]] = _fmt(self.eval_shown[1])
            self.bar.set_postfix(post, refresh=False)
            return
        now = time.perf_counter()
        if now - self.last_log >= self.log_every_s:
            self.last_log = now
            log.info(self.line(step))

    def line(self, step: int) -> str:
        """One status line: steps, budget, returns, throughput."""
        budget = ""
        if self.total:
            budget = f"/{self.total:,} ({100 * self.env_steps / self.total:.0f}%)"
        parts = [
            f"step {step}",
            f"env steps {self.env_steps:,}{budget}",
            *(f"{k} {_fmt(v)}" for k, v in self.shown.items()),
        ]
        if self.eval_shown is not None:
            parts.append(f"{self.eval_shown[0]} {_fmt(self.eval_shown[1])}")
        parts.append(f"{self.rate:,.0f} trans/s")
        parts.append(f"{time.perf_counter() - self.t0:.2f} s")
        return " | ".join(parts)

    def close(self) -> None:
        """Close the bar (if any)."""
        if self.bar is not None:
            self._redirect.__exit__(None, None, None)
            self.bar.close()
            self.bar = None
