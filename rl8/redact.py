"""Passwords out of what rl8 writes down.

Storage and tracking URLs may carry credentials
(``postgresql://user:password@host/db``). rl8 uses them as given, but every
copy it writes for people to read or keep (MLflow params and tags, the
job's ``config.yaml``, the checkpoint's config, the study's attributes, log
lines) has the password replaced by ``***``.
"""

from __future__ import annotations

import logging
import re
from typing import Any

__all__ = ["MASK", "is_redacted", "redact", "redact_log_records"]

MASK = "***"
#: ``scheme://user:password@`` and ``password=...`` / ``token=...`` query parameters.
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)(?P<secret>[^@/\s]+)@")
_QUERY = re.compile(
    r"(?P<head>[?&;](?:password|passwd|pwd|token|secret)=)(?P<secret>[^&;\s]+)", re.I
)


def redact(value: Any) -> Any:
    """``value`` with every credential in its strings masked; dicts, lists and
    tuples are redacted recursively, other values returned as they are."""
    if isinstance(value, str):
        value = _USERINFO.sub(lambda m: f"{m['head']}{MASK}@", value)
        return _QUERY.sub(lambda m: f"{m['head']}{MASK}", value)
    if isinstance(value, dict):
        return {k: redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact(v) for v in value)
    return value


def is_redacted(stored: Any, actual: Any) -> bool:
    """Whether ``stored`` is ``actual`` with its credentials masked (and differs)."""
    return isinstance(stored, str) and stored != actual and redact(actual) == stored


def redact_log_records() -> None:
    """From now on, mask credentials in every log record of this process (its
    message and string arguments), whoever logs it: Hydra's launchers echo each
    job's overrides, storage and tracking URLs included."""
    make = logging.getLogRecordFactory()
    if getattr(make, "rl8_redacts", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = redact(record.args)
        return record

    factory.rl8_redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
