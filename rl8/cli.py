"""``key=value`` command lines of ``python -m rl8.evaluate`` and
``python -m rl8.export``: parsed into a dataclass of their keys, with every
mistake reported as one line.

These commands act on a trained job, whose config is stored in its
checkpoint, so they take plain ``key=value`` arguments (OmegaConf's dotlist)
rather than composing a Hydra config: ``env.config.length=1.5`` overrides
a key of the *job's* env node, which Hydra could not know in advance.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import ConfigError, did_you_mean

__all__ = ["parse", "run_command"]

_Conf = TypeVar("_Conf")


def parse(argv: Sequence[str], schema: type[_Conf], command: str) -> _Conf:
    """``key=value`` arguments as an instance of the dataclass ``schema``.

    Raises:
        ConfigError: An unknown key (with the closest one), a wrong type, or
            an argument that is not ``key=value``.
    """
    bad = [a for a in argv if "=" not in a]
    if bad:
        raise ConfigError(f"{bad[0]!r} is not key=value; see {command} --help.")
    known = [f.name for f in fields(schema)]  # type: ignore[arg-type]
    for arg in argv:
        key = arg.split("=", 1)[0].lstrip("+").split(".", 1)[0]
        if key not in known:
            raise ConfigError(
                f"{key} is not a key of {command}{did_you_mean(key, known)}; "
                f"keys: {', '.join(known)}."
            )
    try:
        dotlist = OmegaConf.from_dotlist([a.lstrip("+") for a in argv])
        merged = OmegaConf.merge(OmegaConf.structured(schema), dotlist)
    except OmegaConfBaseException as e:
        raise ConfigError(f"{e.full_key}: {str(e).splitlines()[0]}") from None
    assert isinstance(merged, DictConfig)
    conf = OmegaConf.to_object(merged)
    assert isinstance(conf, schema)
    return conf


def run_command(
    doc: str | None, schema: type[_Conf], command: str, body: Callable[[_Conf], Any]
) -> int:
    """Parse ``sys.argv`` for ``command`` (``--help`` prints ``doc``) and run
    ``body`` on it; returns the exit status: 0, or 1 after a one-line error."""
    args = sys.argv[1:]
    if any(a in ("-h", "--help") for a in args):
        print(doc)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        body(parse(args, schema, command))
    except ConfigError as e:
        print(f"Error: {e}", file=sys.stderr)
        return 1
    return 0
