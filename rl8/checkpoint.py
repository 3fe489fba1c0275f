"""Checkpoints of ``python -m rl8.train`` jobs.

One file per job, ``<job output dir>/checkpoint.pt``, rewritten atomically
(written to a temporary file in the same directory, flushed to disk, then
``os.replace``-d), so a crash or ``kill -9`` at any moment leaves the
previous checkpoint intact.

The file holds only plain types (tensors, numbers, strings, lists, dicts), so
it loads with ``torch.load(weights_only=True)``::

    {
        "format": 1,
        "trainer": trainer.state_dict(),      # model, optimizer, schedulers, counters
        "schedule": schedule.state_dict(),    # or None
        "rng": {"torch": ..., "numpy": ..., "random": ..., "cuda": [...]},
        "mlflow_run_id": "...",               # or None
        "config": "<the composed config, YAML>",
        "loop": {"steps": ..., "elapsed_s": ..., "last_eval": {...}},
    }
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._files import atomic_write
from .errors import ConfigError

__all__ = [
    "CHECKPOINT_NAME",
    "FORMAT",
    "find",
    "get_rng_state",
    "load",
    "save",
    "seed_everything",
    "set_rng_state",
]

#: File name of a job's checkpoint inside its output dir.
CHECKPOINT_NAME = "checkpoint.pt"
#: Version of the checkpoint layout.
FORMAT = 1


def seed_everything(seed: int) -> None:
    """Seed ``torch`` (CPU and CUDA), ``numpy`` and ``random``."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def get_rng_state() -> dict[str, Any]:
    """The global RNG states of torch, numpy and random, as tensors and numbers."""
    _, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_keys, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_gauss),
        },
        "random": {
            "version": int(py_version),
            "state": torch.tensor(py_state, dtype=torch.int64),
            "gauss_next": py_gauss,
        },
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`get_rng_state`'s output."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            n["keys"].numpy().astype(np.uint32),
            int(n["pos"]),
            int(n["has_gauss"]),
            float(n["cached_gaussian"]),
        )
    )
    r = state["random"]
    random.setstate(
        (int(r["version"]), tuple(int(x) for x in r["state"].tolist()), r["gauss_next"])
    )
    if state.get("cuda") and torch.cuda.is_available():
        cuda = state["cuda"][: torch.cuda.device_count()]
        torch.cuda.set_rng_state_all(cuda)


def save(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` to ``path`` atomically (temp file + ``os.replace``)."""
    return atomic_write(path, lambda f: torch.save({"format": FORMAT, **payload}, f))


def find(resume: str | Path) -> Path:
    """The checkpoint file of ``resume`` (a job output dir, or the file itself).

    Raises:
        ConfigError: naming ``resume`` when there is no checkpoint there.
    """
    p = Path(resume).expanduser()
    if p.is_dir():
        p = p / CHECKPOINT_NAME
    if not p.is_file():
        raise ConfigError(
            f"resume={str(resume)!r} has no checkpoint: expected a job output dir holding "
            f"{CHECKPOINT_NAME} (e.g. outputs/<date>/<time>) or the path of that file."
        )
    return p


def load(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint with ``torch.load(weights_only=True)`` onto the CPU.

    Raises:
        ConfigError: the file is not an rl8 checkpoint (or is corrupt).
    """
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ConfigError(f"resume: cannot read checkpoint {str(path)!r}: {first}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or "trainer" not in ckpt:
        raise ConfigError(
            f"resume: {str(path)!r} is not an rl8 checkpoint (format {FORMAT}) "
            "written by python -m rl8.train."
        )
    return ckpt
