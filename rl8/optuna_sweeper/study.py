"""The sweep's Optuna study in its storage: where it lives, opening or resuming it,
and the sweeper's bookkeeping on it (which process owns a trial, which Hydra job
numbers ran it, failed and interrupted trials, the invocations that resumed it).
"""

from __future__ import annotations

import logging
import os
import shlex
import socket
import sys
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf, open_dict

from .errors import SweeperConfigError
from .reporter import ATTR_AGGREGATE, ATTR_PRUNER, ATTR_SEEDS, open_storage

if TYPE_CHECKING:
    import optuna

__all__ = [
    "JOURNAL_FILE",
    "MAX_REASON",
    "SweepStudy",
    "count_states",
    "job_storage_spec",
    "safe_storage",
    "storage_spec",
]

log = logging.getLogger(__name__)

JOURNAL_FILE = "optuna.journal"
ATTR_OWNER = "rl8:owner"
ATTR_JOB_NUMS = "rl8:job_nums"
MAX_REASON = 4000  # characters of a fail_reason or pruned_reason kept
_MAX_HISTORY = 50


# --------------------------------------------------------------------------- storage
def storage_spec(storage: str | None, sweep_dir: Path) -> str:
    """The storage every process opens: ``hydra.sweeper.storage`` made absolute
    (jobs may run in another working directory); a journal file in the sweep
    directory by default."""
    if not storage:
        return str(sweep_dir / JOURNAL_FILE)
    s = str(storage)
    if "://" in s:
        prefix = "sqlite:///"
        rest = s[len(prefix) :]
        if s.startswith(prefix) and rest and not rest.startswith("/") and rest != ":memory:":
            return prefix + str(Path(rest).absolute())
        return s
    path = s.removeprefix("journal:")
    p = Path(path).expanduser().absolute()
    p.parent.mkdir(parents=True, exist_ok=True)
    return str(p)


def job_storage_spec(sweeper_node: Any, spec: str) -> str:
    """The storage passed to jobs: an ``${oc.env:...}`` URL in ``hydra.sweeper``
    (``sweeper_node``) stays unresolved so that secrets stay out of job overrides."""
    try:
        raw = OmegaConf.to_container(sweeper_node, resolve=False).get("storage")  # type: ignore[union-attr]
    except Exception:
        raw = None
    if isinstance(raw, str) and raw.strip().startswith("${oc.env:") and "://" in spec:
        return raw
    return spec


def safe_storage(spec: str) -> str:
    """Hide a password in an RDB URL."""
    if "://" in spec and "@" in spec:
        scheme, rest = spec.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        if ":" in creds:
            creds = creds.split(":", 1)[0] + ":***"
        return f"{scheme}://{creds}@{host}"
    return spec


def count_states(trials: Iterable[optuna.trial.FrozenTrial]) -> Counter[str]:
    """Number of trials per state name (``COMPLETE``, ``PRUNED``, ``FAIL``, ...)."""
    return Counter(t.state.name for t in trials)


# --------------------------------------------------------------------------- the study
class SweepStudy:
    """The sweeper's handle on its study: opens or resumes it, then keeps the books.

    Args:
        spec: Storage specification (:func:`storage_spec`).
        study_name: Name of the study.
        directions: ``"minimize"``/``"maximize"`` per objective; a resumed study
            must have the same.
        pruner: The study's pruner (the jobs' reporters build their own).

    Raises:
        SweeperConfigError: the stored study has other directions.
    """

    def __init__(
        self,
        spec: str,
        study_name: str,
        directions: list[str],
        pruner: optuna.pruners.BasePruner,
    ) -> None:
        import optuna

        self.storage = open_storage(spec)
        self.study = optuna.create_study(
            storage=self.storage,
            study_name=study_name,
            directions=[optuna.study.StudyDirection[d.upper()] for d in directions],
            sampler=optuna.samplers.RandomSampler(),
            pruner=pruner,
            load_if_exists=True,
        )
        got = [d.name.lower() for d in self.study.directions]
        if got != directions:
            raise SweeperConfigError(
                f"study {study_name!r} in {safe_storage(spec)} has directions {got}, "
                f"but hydra.sweeper.direction is {directions}"
            )
        self.study_id = self.storage.get_study_id_from_name(self.study.study_name)

    def trial_id(self, number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)

    def n_finished(self) -> int:
        """Trials that count towards ``n_trials`` (an interrupted FAIL does not)."""
        from optuna.trial import TrialState

        n = 0
        for t in self.study.get_trials(deepcopy=False):
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
                t.state == TrialState.FAIL and not t.user_attrs.get("interrupted")
            ):
                n += 1
        return n

    def next_job_idx(self) -> int:
        """The first Hydra job number after those of earlier invocations."""
        nums = [
            n
            for t in self.study.get_trials(deepcopy=False)
            for n in (t.system_attrs.get(ATTR_JOB_NUMS) or [])
        ]
        return max(nums) + 1 if nums else 0

    def claim(self, number: int, seeds: int, how: str, job_nums: list[int]) -> None:
        """Record on a new trial who runs it, its Hydra job numbers and what the
        reporters need (seeds per trial, aggregate)."""
        attrs: dict[str, Any] = {
            ATTR_OWNER: _owner(),
            ATTR_SEEDS: seeds,
            ATTR_AGGREGATE: how,
            ATTR_JOB_NUMS: job_nums,
        }
        tid = self.trial_id(number)
        for attr, value in attrs.items():
            self.storage.set_trial_system_attr(tid, attr, value)

    def record_pruner(self, cfg: dict[str, Any] | None) -> None:
        """The pruner config the jobs' reporters build their pruner from."""
        self.storage.set_study_system_attr(self.study_id, ATTR_PRUNER, cfg)

    def fail(self, number: int, reason: str, interrupted: bool) -> None:
        """Mark a trial FAIL with ``fail_reason`` (and ``interrupted``) set."""
        from optuna.trial import TrialState

        tid = self.trial_id(number)
        self.storage.set_trial_user_attr(tid, "fail_reason", reason[:MAX_REASON])
        if interrupted:
            self.storage.set_trial_user_attr(tid, "interrupted", True)
        try:
            self.study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
        except Exception as e:  # never mask the original problem
            log.warning(f"could not mark trial {number} FAIL: {e}")

    def fail_stale_trials(self) -> None:
        """Trials left RUNNING by a dead sweeper on this host: FAIL, flagged interrupted."""
        from optuna.trial import TrialState

        me = _owner()
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            owner = t.system_attrs.get(ATTR_OWNER) or {}
            if owner.get("host") != me["host"] or not owner.get("pid"):
                continue
            if owner["pid"] != me["pid"] and _pid_alive(int(owner["pid"])):
                continue
            self.fail(t.number, "interrupted: its sweeper process died", interrupted=True)

    def record_invocation(
        self, config: DictConfig, arguments: list[str], attrs: dict[str, Any]
    ) -> None:
        """Store the command line, the overrides, the base config and ``attrs`` (the
        sweep's settings) as user attributes, and append to ``invocations``."""
        cmd = _command_line()
        base = OmegaConf.create(OmegaConf.to_container(config, resolve=False))
        assert isinstance(base, DictConfig)
        with open_dict(base):
            base.pop("hydra", None)
        try:
            base_yaml = OmegaConf.to_yaml(base, resolve=True)
        except Exception:
            base_yaml = OmegaConf.to_yaml(base, resolve=False)
        history = list(self.study.user_attrs.get("invocations", []))
        history.append({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "command_line": cmd})
        user_attrs = {
            "command_line": cmd,
            "overrides": list(arguments),
            "hydra_overrides": list(config.hydra.overrides.hydra),
            "base_config": base_yaml,
            **attrs,
            "invocations": history[-_MAX_HISTORY:],
        }
        from ..redact import redact

        for k, v in user_attrs.items():
            self.study.set_user_attr(k, redact(v))


# --------------------------------------------------------------------------- helpers
def _owner() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _command_line() -> str:
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    argv = list(sys.argv)
    head = ["python", "-m", spec.name] if spec is not None and spec.name else ["python", argv[0]]
    return shlex.join([*head, *argv[1:]])
