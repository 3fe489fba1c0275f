"""What a sweep leaves in its sweep directory: ``optimization_results.yaml`` (counts,
the best trial(s), their overrides and a pasteable config) and the plots
(optimization history, parameter importances, Pareto front)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .space import key_name, parse_override
from .study import count_states

if TYPE_CHECKING:
    import optuna

__all__ = ["RESULTS_FILE", "overrides_to_config", "save_plots", "write_results"]

log = logging.getLogger(__name__)

RESULTS_FILE = "optimization_results.yaml"
_HEADER = (
    "# Best parameters of the Optuna study (rl8 optuna sweeper).\n"
    "# best_config can be pasted into an experiment (# @package _global_);\n"
    "# best_overrides onto the command line.\n"
)


def write_results(
    study: optuna.Study,
    sweep_dir: Path,
    storage: str,
    directions: list[str],
    groups: Iterable[str],
    plots: list[Path] | None,
) -> dict[str, Any]:
    """Write ``optimization_results.yaml`` in ``sweep_dir`` and return its content.

    Args:
        study: The study.
        sweep_dir: Where to write.
        storage: The storage, as shown to users (no password).
        directions: One per objective.
        groups: The app's config groups (their overrides go to ``defaults``).
        plots: The saved plots, listed by file name.
    """
    import yaml
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    n_by_state = count_states(trials)
    counts = {s.name: n_by_state[s.name] for s in TrialState if n_by_state[s.name]}
    interrupted = sum(bool(t.user_attrs.get("interrupted")) for t in trials)
    res: dict[str, Any] = {
        "name": "optuna",
        "study_name": study.study_name,
        "storage": storage,
        "direction": directions[0] if len(directions) == 1 else directions,
        "n_trials": counts,
    }
    if interrupted:
        res["n_interrupted"] = interrupted
    if not counts.get(TrialState.COMPLETE.name):
        res["best_params"] = None
        res["best_value"] = None
    elif len(directions) == 1:
        best = study.best_trial
        res["best_trial"] = best.number
        res["best_value"] = best.value
        res["best_params"] = dict(best.params)
        overrides = list(best.user_attrs.get("overrides", []))
        res["best_overrides"] = overrides
        res["best_config"] = overrides_to_config(overrides, groups)
        if "seed_values" in best.user_attrs:
            res["best_seed_values"] = best.user_attrs["seed_values"]
    else:
        res["best_trials"] = [
            {
                "number": t.number,
                "values": list(t.values),
                "params": dict(t.params),
                "overrides": list(t.user_attrs.get("overrides", [])),
            }
            for t in study.best_trials
        ]
    if plots:
        res["plots"] = [p.name for p in plots]
    text = _HEADER + yaml.safe_dump(_plain(res), sort_keys=False, default_flow_style=False)
    (sweep_dir / RESULTS_FILE).write_text(text)
    return res


def overrides_to_config(overrides: list[str], groups: Iterable[str]) -> dict[str, Any]:
    """Overrides as a nested config; config-group choices (``groups``, or any
    ``group@package``) become ``defaults: [{override /group: choice}]``."""
    groups = set(groups)
    cfg: dict[str, Any] = {}
    defaults: list[dict[str, Any]] = []
    for line in overrides:
        try:
            o = parse_override(line)
        except Exception:
            continue
        key = o.key_or_group
        if o.is_delete() or o.is_sweep_override():
            continue
        value = o.value()
        if key in groups or o.package is not None:
            defaults.append({f"override /{key_name(o)}": value})
            continue
        node = cfg
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return {"defaults": defaults, **cfg} if defaults else cfg


def save_plots(study: optuna.Study, sweep_dir: Path, directions: list[str]) -> list[Path]:
    """Save the optimization history, parameter importances and (2 or 3 objectives)
    the Pareto front as PNGs in ``sweep_dir``; returns the saved files. A plot that
    fails is skipped with a warning."""
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return []
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from optuna.visualization import matplotlib as ovm
    except Exception as e:
        log.warning(f"No plots (matplotlib unavailable: {e})")
        return []
    saved: list[Path] = []

    def save(name: str, fn: Callable[[], Any]) -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax = fn()
            fig = ax.flat[0].figure if hasattr(ax, "flat") else ax.figure
            path = sweep_dir / name
            fig.savefig(path, dpi=100, bbox_inches="tight")
            plt.close(fig)
            saved.append(path)
        except Exception as e:
            log.warning(f"Could not plot {name}: {type(e).__name__}: {e}")
            plt.close("all")

    n_params = len({k for t in complete for k in t.params})
    if len(directions) == 1:
        save("optimization_history.png", lambda: ovm.plot_optimization_history(study))
        if len(complete) >= 2 and n_params >= 2:
            save("param_importances.png", lambda: ovm.plot_param_importances(study))
    else:

        def history(i: int) -> Callable[[], Any]:
            return lambda: ovm.plot_optimization_history(
                study, target=lambda t: t.values[i], target_name=f"objective {i}"
            )

        for i in range(len(directions)):
            save(f"optimization_history_{i}.png", history(i))
        if len(directions) in (2, 3):
            save("pareto_front.png", lambda: ovm.plot_pareto_front(study))
        if len(complete) >= 2 and n_params >= 2:
            save(
                "param_importances.png",
                lambda: ovm.plot_param_importances(
                    study, target=lambda t: t.values[0], target_name="objective 0"
                ),
            )
    return saved


def _plain(x: Any) -> Any:
    """Make a value safe for yaml.safe_dump."""
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if isinstance(x, bool | int | float | str) or x is None:
        return x
    try:
        return float(x)
    except (TypeError, ValueError):
        return str(x)
