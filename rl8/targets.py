"""Which callables a stored config may make rl8 instantiate.

A checkpoint's config names callables (``_target_`` nodes, and
``trainer.distribution_cls``) that resuming, evaluating and exporting build.
Reading the checkpoint runs no code (``torch.load(weights_only=True)``), but
instantiating an arbitrary ``_target_`` would: a crafted checkpoint could name
``builtins.open`` or a ``torch.load`` without ``weights_only``. So a stored
config may name only callables that the current command names itself: the
``_target_``s of the configs rl8 installs (``conf/``, the experiments), those
of the config composed for this command (its config dirs and overrides),
and rl8's stop conditions.
"""

from __future__ import annotations

import functools
import importlib.resources
from collections.abc import Iterator
from typing import Any

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf

from .errors import ConfigError

__all__ = ["check_stored_targets", "installed_targets", "targets_in"]

#: Keys holding a dotted path the app imports, besides ``_target_``.
_PATH_KEYS = ("trainer.distribution_cls",)


def targets_in(node: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """``(key, dotted path)`` of every ``_target_`` in ``node`` (a config or
    plain containers), and of the keys in :data:`_PATH_KEYS`."""
    if isinstance(node, DictConfig | ListConfig):
        node = OmegaConf.to_container(node, resolve=False)
    if isinstance(node, dict):
        for k, v in node.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if (k == "_target_" or key in _PATH_KEYS) and isinstance(v, str):
                yield key, v
            else:
                yield from targets_in(v, key)
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from targets_in(v, f"{prefix}[{i}]")


@functools.cache
def installed_targets() -> frozenset[str]:
    """The ``_target_``s of every YAML file rl8 installs (``rl8.conf``)."""
    found: set[str] = set()
    stack = [importlib.resources.files("rl8.conf")]
    while stack:
        entry = stack.pop()
        if entry.is_dir():
            stack.extend(entry.iterdir())
        elif entry.name.endswith(".yaml"):
            found.update(t for _, t in targets_in(yaml.safe_load(entry.read_text())))
    from . import conditions

    found.update(
        f"rl8.conditions.{name}"
        for name in conditions.__all__
        if isinstance(getattr(conditions, name), type)
    )
    return frozenset(found)


def check_stored_targets(stored: Any, current: Any, what: str) -> None:
    """Refuse ``stored`` (a config read from a file) when it names a callable
    that neither rl8's installed configs nor ``current`` (the config this
    command composed, or its overrides) name.

    Raises:
        ConfigError: naming the key, the callable and how to allow it.
    """
    allowed = installed_targets() | {t for _, t in targets_in(current)}
    for key, target in targets_in(stored):
        if target not in allowed:
            raise ConfigError(
                f"{what}: its stored config names {target} ({key}), which neither rl8's "
                "configs nor this command's name. rl8 builds only callables the current "
                "command names, so a checkpoint cannot make it run other code. If you trust "
                f"the file, name it on the command line ({key}={target})."
            )
