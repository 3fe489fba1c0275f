"""The sweep's Optuna study in its storage: where it lives, opening or resuming it,
and the sweeper's bookkeeping on it (which process owns a trial, which Hydra job
numbers ran it, failed and interrupted trials, the invocations that resumed it).

Several sweepers ("workers") may share one study. Each raises a heartbeat counter
on the trials it runs; a trial whose counter stands still for the grace period, or
whose worker on this host has exited, is stale: it is marked FAIL (``interrupted``,
so it does not count toward ``n_trials``) and another worker runs a replacement.
Staleness is judged by the watcher's own clock, so hosts need not agree on time.
"""

from __future__ import annotations

import logging
import os
import shlex
import socket
import sys
import threading
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
    "STORAGE_ENV",
    "SweepStudy",
    "count_states",
    "job_storage_spec",
    "pid_alive",
    "safe_storage",
    "storage_spec",
]

log = logging.getLogger(__name__)

JOURNAL_FILE = "optuna.journal"
ATTR_OWNER = "rl8:owner"
ATTR_JOB_NUMS = "rl8:job_nums"
ATTR_HEARTBEAT = "rl8:heartbeat"  # trial: a counter its sweeper raises while it runs
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


#: The environment variable that carries a storage URL with a password to the jobs.
STORAGE_ENV = "RL8_OPTUNA_STORAGE"


def job_storage_spec(sweeper_node: Any, spec: str) -> str:
    """The storage passed to jobs, kept free of secrets: an ``${oc.env:...}`` URL in
    ``hydra.sweeper`` (``sweeper_node``) stays unresolved, and a URL with a password
    goes to the jobs in the environment (``RL8_OPTUNA_STORAGE``, set here; jobs
    inherit it, on Slurm too), so job overrides, Hydra's logs and ``overrides.yaml``
    hold ``${oc.env:RL8_OPTUNA_STORAGE}`` instead."""
    from ..redact import redact

    try:
        raw = OmegaConf.to_container(sweeper_node, resolve=False).get("storage")  # type: ignore[union-attr]
    except Exception:
        raw = None
    if isinstance(raw, str) and raw.strip().startswith("${oc.env:") and "://" in spec:
        return raw
    if redact(spec) != spec:
        os.environ[STORAGE_ENV] = spec
        return "${oc.env:" + STORAGE_ENV + "}"
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

        try:
            self.storage = open_storage(spec)
        except ImportError as e:
            raise SweeperConfigError(f"hydra.sweeper.storage={safe_storage(spec)}: {e}") from e
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
        self._beats: dict[int, int] = {}  # trials this worker runs -> their heartbeat
        self._beats_lock = threading.Lock()
        self._seen: dict[int, tuple[Any, float]] = {}  # others' trials: (heartbeat, since)

    def trial_id(self, number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self.study_id, number)

    def counts(self) -> tuple[int, int]:
        """``(finished, running)``: trials that count toward ``n_trials`` (an
        interrupted FAIL does not), and trials any worker is running."""
        from optuna.trial import TrialState

        finished = running = 0
        for t in self.study.get_trials(deepcopy=False):
            if t.state == TrialState.RUNNING:
                running += 1
            elif t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
                t.state == TrialState.FAIL and not t.user_attrs.get("interrupted")
            ):
                finished += 1
        return finished, running

    def n_finished(self) -> int:
        """Trials that count towards ``n_trials`` (an interrupted FAIL does not)."""
        return self.counts()[0]

    def claim(
        self,
        number: int,
        seeds: int,
        how: str,
        job_nums: list[int],
        parent_run_id: str | None = None,
    ) -> None:
        """Record on a new trial who runs it (host, pid, MLflow parent run), its Hydra
        job numbers and what the reporters need (seeds per trial, aggregate)."""
        attrs: dict[str, Any] = {
            ATTR_OWNER: {**_owner(), "parent_run_id": parent_run_id},
            ATTR_SEEDS: seeds,
            ATTR_AGGREGATE: how,
            ATTR_JOB_NUMS: job_nums,
            ATTR_HEARTBEAT: 0,
        }
        with self._beats_lock:
            self._beats[number] = 0
        tid = self.trial_id(number)
        for attr, value in attrs.items():
            self.storage.set_trial_system_attr(tid, attr, value)

    def release(self, number: int) -> None:
        """This worker no longer runs trial ``number`` (told, or failed)."""
        with self._beats_lock:
            self._beats.pop(number, None)

    def beat(self) -> None:
        """Raise the heartbeat of every trial this worker runs (call it every
        heartbeat interval, from any thread)."""
        with self._beats_lock:
            for number in self._beats:
                self._beats[number] += 1
            beats = dict(self._beats)
        for number, count in beats.items():
            try:
                self.storage.set_trial_system_attr(self.trial_id(number), ATTR_HEARTBEAT, count)
            except Exception as e:  # finished meanwhile, or the storage hiccuped
                log.debug(f"heartbeat of trial {number}: {e}")

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

    def fail_stale_trials(self, grace: float | None = None) -> list[dict[str, Any]]:
        """Mark stale RUNNING trials of other workers FAIL, flagged interrupted.

        A trial is stale when its worker ran on this host and has exited, or (with
        ``grace`` seconds) when its heartbeat has not moved for ``grace`` seconds
        of this process's clock. Returns the stale trials' owners (host, pid,
        ``parent_run_id``), so the caller can close what they left open.
        """
        from optuna.trial import TrialState

        me = _owner()
        now = time.monotonic()
        stale: list[dict[str, Any]] = []
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if t.number in self._beats:
                continue  # ours, alive
            owner = t.system_attrs.get(ATTR_OWNER) or {}
            pid = owner.get("pid")
            if (
                owner.get("host") == me["host"]
                and pid
                and (pid == me["pid"] or not pid_alive(int(pid)))
            ):
                why = "its sweeper process died"
            elif grace is None:
                continue
            else:
                beat = t.system_attrs.get(ATTR_HEARTBEAT)
                seen = self._seen.get(t.number)
                if seen is None or seen[0] != beat:
                    self._seen[t.number] = (beat, now)
                    continue
                if now - seen[1] < grace:
                    continue
                why = f"no heartbeat from its sweeper for {grace:g} s"
            where = f"{owner.get('host')}:{pid}" if owner else "an unknown worker"
            self.fail(t.number, f"interrupted: {why} ({where})", interrupted=True)
            self._seen.pop(t.number, None)
            stale.append(owner)
        return stale

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


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host."""
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
