"""Scale-out checks with the real CLI (figures for docs/optuna.md "Scaling out").

``jobs``: parallel jobs on a fresh MLflow store, several rounds, each in a new
directory; prints each round's exit code and how many runs were tracked::

    python scripts/scale_check.py jobs --rounds 5 --jobs 12

``workers``: N sweeper processes on one study (a journal file or a database URL),
optionally killing one with SIGKILL mid-trial; prints the trials by state, the
finished count against ``n_trials``, duplicate parameter sets, trial numbers run
more than once and MLflow runs left RUNNING::

    python scripts/scale_check.py workers --workers 4 --trials 24
    python scripts/scale_check.py workers --storage postgresql://u:pw@127.0.0.1:5432/optuna --kill

Every job trains CartPole for a tiny budget (``--steps`` trainer steps).
"""

from __future__ import annotations

import argparse
import collections
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TINY = [
    "trainer.num_envs=4",
    "trainer.horizon=32",
    "trainer.sgd_minibatch_size=16",
    "trainer.num_sgd_iters=1",
    "trainer.horizons_per_env_reset=1",
    "stop.max_env_steps=null",
    "eval.every=1",
    "progress.bar=false",
]


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RL8_"))}


def _runs(uri: str) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exps = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(exps, max_results=10000) if exps else []


def jobs(args: argparse.Namespace) -> None:
    seeds = ",".join(str(s) for s in range(args.jobs))
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="rl8-jobs-") as d:
            cmd = [sys.executable, "-m", "rl8.train", "-m", "hydra/launcher=joblib"]
            cmd += [f"hydra.launcher.n_jobs={args.n_jobs}", f"seed={seeds}"]
            cmd += [*TINY, f"stop.max_steps={args.steps}"]
            t = time.perf_counter()
            proc = subprocess.run(cmd, cwd=d, env=_env(), capture_output=True, text=True)
            wall = time.perf_counter() - t
            runs = _runs(f"sqlite:///{Path(d) / 'mlflow.db'}")
            done = sum(r.info.status == "FINISHED" for r in runs)
            print(
                f"round {r + 1}: exit {proc.returncode}, {done}/{args.jobs} runs FINISHED "
                f"({len(runs)} tracked), {wall:.1f} s",
                flush=True,
            )
            if proc.returncode:
                print(proc.stderr[-2000:])


def workers(args: argparse.Namespace) -> None:
    import optuna
    from optuna.trial import TrialState

    from rl8.optuna_sweeper.reporter import open_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    root = Path(tempfile.mkdtemp(prefix="rl8-workers-"))
    storage = args.storage or f"journal:{root / 'study.journal'}"
    uri = f"sqlite:///{root / 'mlflow.db'}"
    procs = []
    t0 = time.perf_counter()
    for i in range(args.workers):
        cmd = [sys.executable, "-m", "rl8.train", "-m", "+experiment=cartpole_search"]
        cmd += [f"hydra.sweeper.storage={storage}", f"hydra.sweeper.n_trials={args.trials}"]
        cmd += [f"hydra.sweep.dir={root / f'w{i}'}", "hydra.sweeper.plots=false"]
        cmd += [f"hydra.sweeper.heartbeat_interval={args.heartbeat}", f"mlflow.tracking_uri={uri}"]
        cmd += [*TINY, f"stop.max_steps={args.steps}"]
        log = open(root / f"worker{i}.log", "w")  # noqa: SIM115 (closed at exit)
        procs.append(subprocess.Popen(cmd, cwd=root, env=_env(), stdout=log, stderr=log))
    study_storage = open_storage(storage.removeprefix("journal:"))
    if args.kill:
        victim = procs[0]
        while victim.poll() is None:
            time.sleep(0.2)
            try:
                study = optuna.load_study(study_name="cartpole_search", storage=study_storage)
            except KeyError:
                continue
            mine = [
                t
                for t in study.get_trials(states=(TrialState.RUNNING,))
                if (t.system_attrs.get("rl8:owner") or {}).get("pid") == victim.pid
                and t.intermediate_values
            ]
            if mine:
                victim.send_signal(signal.SIGKILL)
                print(f"killed worker 0 (pid {victim.pid}) during trial {mine[0].number}")
                break
    codes = [p.wait() for p in procs]
    wall = time.perf_counter() - t0
    study = optuna.load_study(study_name="cartpole_search", storage=study_storage)
    trials = study.get_trials()
    states = collections.Counter(t.state.name for t in trials)
    counted = sum(
        t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        or (t.state == TrialState.FAIL and not t.user_attrs.get("interrupted"))
        for t in trials
    )
    params = collections.Counter(tuple(sorted(t.params.items())) for t in trials)
    runs = _runs(uri)
    jobs_per_trial = collections.Counter(
        r.data.tags["rl8.trial_number"] for r in runs if "rl8.trial_number" in r.data.tags
    )
    print(f"storage: {storage.split('@')[-1]}, {args.workers} workers, n_trials {args.trials}")
    print(f"exit codes: {codes}; wall {wall:.1f} s")
    print(f"trials: {dict(states)}; finished (counted toward n_trials): {counted}")
    print(f"duplicate parameter sets: {sum(n - 1 for n in params.values())}")
    print(f"trial numbers run by more than one job: {sum(n > 1 for n in jobs_per_trial.values())}")
    print(
        f"trials per worker: {dict(collections.Counter(t.system_attrs['rl8:owner']['pid'] for t in trials))}"
    )
    print(f"MLflow runs: {dict(collections.Counter(r.info.status for r in runs))}")
    for t in trials:
        if t.state == TrialState.FAIL:
            print(f"  trial {t.number} FAIL: {t.user_attrs.get('fail_reason')}")
    print(f"(files in {root})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("jobs", help="parallel jobs on a fresh MLflow store")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--jobs", type=int, default=12)
    p.add_argument("--n-jobs", type=int, default=2, help="hydra.launcher.n_jobs")
    p.add_argument("--steps", type=int, default=2)
    p = sub.add_parser("workers", help="several sweepers on one study")
    p.add_argument("--storage", default=None, help="default: a journal file in a temp dir")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--trials", type=int, default=24)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--heartbeat", type=float, default=2.0)
    p.add_argument("--kill", action="store_true", help="SIGKILL worker 0 mid-trial")
    args = parser.parse_args()
    {"jobs": jobs, "workers": workers}[args.mode](args)


if __name__ == "__main__":
    main()
