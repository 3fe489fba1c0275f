"""Policy files: :meth:`Policy.save <rl8.policies.Policy.save>` and
:meth:`Policy.load <rl8.policies.Policy.load>`, rl8 1.0.0's convenience
without its pickle.

A policy file holds only plain types, so it loads with
``torch.load(weights_only=True)``::

    {"format": "rl8.policy", "version": 1,
     "policy": "rl8.policies.Policy", "model_cls": "rl8.models.MLPModel",
     "model_config": {...}, "distribution_cls": "rl8.distributions.Categorical",
     "observation_spec": {"kind": "unbounded", "shape": [4], "dtype": "float32"},
     "action_spec": {"kind": "discrete", "n": 2, "shape": [1]},
     "model": <state dict>}

Classes are named by their dotted path. Loading resolves only rl8's own
policies, models and distributions; a custom class is imported only when
the caller passes ``trusted=True`` (importing a module runs its code).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .._files import atomic_write
from ..specs import BoundedSpec, DiscreteSpec, Spec, UnboundedSpec

__all__ = ["FORMAT", "NotAPolicyFile", "load", "save"]

FORMAT = "rl8.policy"
_VERSION = 1
#: Modules whose classes a policy file may name without ``trusted=True``.
_OWN = ("rl8.policies.", "rl8.models.", "rl8.distributions.")


class NotAPolicyFile(ValueError):
    """The file is not one :func:`save` wrote (it may be a checkpoint)."""


def _dotted(cls: Any) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _spec_to_plain(spec: Spec) -> dict[str, Any]:
    base = {"shape": list(spec.shape), "dtype": str(spec.dtype).removeprefix("torch.")}
    if isinstance(spec, DiscreteSpec):
        return {"kind": "discrete", "n": spec.n, **base}
    if isinstance(spec, BoundedSpec):
        return {"kind": "bounded", "low": spec.low, "high": spec.high, **base}
    if isinstance(spec, UnboundedSpec):
        return {"kind": "unbounded", **base}
    raise TypeError(f"Policy.save: cannot describe a {type(spec).__name__} spec.")


def _spec_from_plain(d: Mapping[str, Any]) -> Spec:
    shape, dtype = tuple(int(s) for s in d["shape"]), getattr(torch, str(d["dtype"]))
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"policy file: {d['dtype']!r} is not a torch dtype.")
    if d["kind"] == "discrete":
        return DiscreteSpec(int(d["n"]), shape=shape)
    if d["kind"] == "bounded":
        return BoundedSpec(*shape, low=float(d["low"]), high=float(d["high"]), dtype=dtype)
    if d["kind"] == "unbounded":
        return UnboundedSpec(*shape, dtype=dtype)
    raise ValueError(f"policy file: unknown spec kind {d['kind']!r}.")


def _resolve(dotted: str, trusted: bool, base: type) -> Any:
    """The class named ``dotted``, a subclass of ``base``."""
    if not dotted.startswith(_OWN) and not trusted:
        raise PermissionError(
            f"the policy file names {dotted}, which is not one of rl8's own classes; "
            "loading it imports its module (which runs code). Pass trusted=True if you "
            "trust the file."
        )
    module, _, name = dotted.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ValueError(f"policy file: {dotted} is not a {base.__name__} class.")
    return cls


def save(policy: Any, path: str | os.PathLike[str]) -> Path:
    """Write ``policy`` (weights, model and distribution, specs) to ``path``."""
    config = {k: v for k, v in policy.model_config.items() if k != "distribution_cls"}
    payload = {
        "format": FORMAT,
        "version": _VERSION,
        "policy": _dotted(type(policy)),
        "model_cls": _dotted(type(policy.model)),
        "model_config": config,
        "distribution_cls": _dotted(policy.distribution_cls),
        "observation_spec": _spec_to_plain(policy.observation_spec),
        "action_spec": _spec_to_plain(policy.action_spec),
        "model": {k: v.detach().cpu() for k, v in policy.model.state_dict().items()},
    }
    return atomic_write(path, lambda f: torch.save(payload, f))


def load(
    path: str | os.PathLike[str], *, device: str | torch.device = "cpu", trusted: bool = False
) -> Any:
    """The policy :func:`save` wrote to ``path``.

    Raises:
        NotAPolicyFile: Not a policy file (a ``ValueError``).
        ValueError: A policy file describing something invalid.
        PermissionError: The file names a class outside rl8 and ``trusted`` is false.
    """
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise NotAPolicyFile(f"{str(path)!r} is not a readable policy file: {e}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise NotAPolicyFile(f"{str(path)!r} is not a policy file written by Policy.save.")
    from ..distributions import Distribution
    from .policy import Policy

    policy_cls = _resolve(data["policy"], trusted, Policy)
    policy = policy_cls(
        _spec_from_plain(data["observation_spec"]),
        _spec_from_plain(data["action_spec"]),
        model_cls=_resolve(data["model_cls"], trusted, torch.nn.Module),
        model_config=data["model_config"],
        distribution_cls=_resolve(data["distribution_cls"], trusted, Distribution),
        device=device,
    )
    policy.model.load_state_dict(data["model"])
    return policy
