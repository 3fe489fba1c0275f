"""The search space of rl8's Optuna sweeper, written in Hydra's override grammar.

``hydra.sweeper.params`` and sweep overrides on the command line
(``interval``, ``int(interval)``, ``tag(log, interval)``, ``range``,
``choice``) become Optuna distributions (:func:`parse_search_space`); plain
overrides stay fixed. Every problem is a :class:`SearchSpaceError` naming the
parameter, raised before any trial starts -- including overrides that do not
compose with the app's config (:func:`check_composition`). :func:`format_value`
renders a sampled value back into an override Hydra parses to that value.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    Glob,
    IntervalSweep,
    Override,
    OverrideType,
    RangeSweep,
    Transformer,
)

from .errors import SearchSpaceError, SweeperConfigError

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

__all__ = [
    "SearchParam",
    "check_composition",
    "format_value",
    "key_name",
    "parse_override",
    "parse_search_space",
    "quote",
]

_PREFIX = {
    OverrideType.CHANGE: "",
    OverrideType.ADD: "+",
    OverrideType.FORCE_ADD: "++",
    OverrideType.DEL: "~",
}
_MAX_VALIDATED_CHOICES = 20

# --------------------------------------------------------------------------- values
_PARSER: OverridesParser | None = None


def _parser() -> OverridesParser:
    global _PARSER
    if _PARSER is None:
        _PARSER = OverridesParser.create()
    return _PARSER


def parse_override(line: str) -> Override:
    """Parse one override line with Hydra's grammar (one parser per process)."""
    return _parser().parse_override(line)


def quote(s: str) -> str:
    """``s`` as a quoted override string."""
    if "'" not in s:
        return f"'{s}'"
    if '"' not in s:
        return f'"{s}"'
    return "'" + s.replace("'", "\\'") + "'"


def format_value(value: Any) -> str:
    """Render a Python value as an override value that Hydra parses back to it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        if not value or any(c.isspace() for c in value):
            return quote(value)
        try:
            parsed = parse_override(f"k={value}")
            if not parsed.is_sweep_override() and parsed.value() == value:
                return value
        except Exception:
            pass
        return quote(value)
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{format_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Sequence):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    return quote(str(value))


# --------------------------------------------------------------------------- distributions
@dataclass
class SearchParam:
    """One searched config key and its Optuna distribution."""

    name: str  # Optuna parameter name == config key (without +/++ prefix)
    prefix: str  # "", "+" or "++"
    text: str  # the grammar it came from, e.g. "interval(0.1, 0.3)"
    distribution: BaseDistribution
    # categorical choices that are override grammar (lists/dicts), used verbatim
    raw_choices: frozenset[str] = field(default_factory=frozenset)

    @property
    def key(self) -> str:
        """The override key, with its ``+``/``++`` prefix."""
        return f"{self.prefix}{self.name}"

    def override(self, value: Any) -> str:
        if isinstance(value, str) and value in self.raw_choices:
            rendered = value
        else:
            rendered = format_value(value)
        return f"{self.key}={rendered}"

    def example_values(self) -> list[Any]:
        """Values used to check that the overrides compose (first choice/low bound...)."""
        from optuna.distributions import CategoricalDistribution

        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            return list(d.choices[:_MAX_VALIDATED_CHOICES])
        return [d.low]  # type: ignore[attr-defined]

    def bound_values(self) -> list[Any]:
        """The values an app's config check is run on: both bounds of an interval
        or range, or the choices (at most 20)."""
        from optuna.distributions import CategoricalDistribution

        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            return list(d.choices[:_MAX_VALIDATED_CHOICES])
        high = d.high  # type: ignore[attr-defined]
        step = getattr(d, "step", None)
        if step is not None:  # the last point of the grid: range(0, 1, 0.3) ends at 0.9
            high = d.low + math.floor((high - d.low) / step + 1e-9) * step  # type: ignore[attr-defined]
        return [d.low, high]  # type: ignore[attr-defined]

    def grid_values(self) -> list[Any]:
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            return list(d.choices)
        if isinstance(d, IntDistribution) and not d.log:
            return list(range(d.low, d.high + 1, d.step))
        if isinstance(d, FloatDistribution) and d.step is not None:
            n = round((d.high - d.low) / d.step)
            return [d.low + i * d.step for i in range(n + 1)]
        raise SearchSpaceError(
            f"{self.name}={self.text}: the grid sampler needs a discrete space "
            "(choice(...) or range(...)), not an interval"
        )


def key_name(override: Override) -> str:
    """The key an override sets (``group@package`` for a package override)."""
    if override.package is not None:
        return f"{override.key_or_group}@{override.package}"
    return override.key_or_group


def _num(x: Any) -> float:
    return float(x)


def _distribution_from_override(name: str, text: str, override: Override) -> SearchParam:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    prefix = _PREFIX[override.type]
    if override.type == OverrideType.DEL:
        raise SearchSpaceError(f"{name}: a delete override (~) cannot be searched")
    value = override.value()
    tags = set(getattr(value, "tags", set()) or set())
    unknown_tags = tags - {"log"}
    if unknown_tags:
        raise SearchSpaceError(
            f"{name}={text}: unsupported tag(s) {sorted(unknown_tags)} (only 'log' is understood)"
        )
    log_scale = "log" in tags

    if isinstance(value, ChoiceSweep) or (isinstance(value, RangeSweep) and value.shuffle):
        if log_scale:
            raise SearchSpaceError(f"{name}={text}: tag(log, ...) applies to intervals only")
        choices: list[Any] = []
        raw: set[str] = set()
        for x in override.sweep_iterator(transformer=Transformer.identity):
            if isinstance(x, bool | int | float | str):
                choices.append(x)
            elif isinstance(x, list | dict):
                enc = Transformer.str(x)  # what Transformer.encode returns for a list/dict
                raw.add(enc)
                choices.append(enc)
            else:
                raise SearchSpaceError(f"{name}={text}: unsupported choice value {x!r}")
        if not choices:
            raise SearchSpaceError(f"{name}={text}: choice() needs at least one value")
        if len(set(map(repr, choices))) != len(choices):
            raise SearchSpaceError(f"{name}={text}: duplicate choices")
        return SearchParam(name, prefix, text, CategoricalDistribution(choices), frozenset(raw))

    if isinstance(value, RangeSweep):
        if log_scale:
            raise SearchSpaceError(
                f"{name}={text}: tag(log, ...) applies to intervals, not range()"
            )
        if value.step is None or _num(value.step) <= 0:
            raise SearchSpaceError(f"{name}={text}: range() needs a positive step")
        items = list(override.sweep_iterator(transformer=Transformer.identity))
        if not items:
            raise SearchSpaceError(f"{name}={text}: range() is empty (start >= stop)")
        bounds = (value.start, value.stop, value.step)
        if all(isinstance(v, int) and not isinstance(v, bool) for v in bounds):
            first, last = items[0], items[-1]
            assert isinstance(first, int) and isinstance(last, int)
            dist: BaseDistribution = IntDistribution(first, last, step=int(value.step))
        else:
            start, step = _num(value.start), _num(value.step)
            if len(items) == 1:
                return SearchParam(name, prefix, text, CategoricalDistribution([float(start)]))
            dist = FloatDistribution(start, start + (len(items) - 1) * step, step=step)
        return SearchParam(name, prefix, text, dist)

    if isinstance(value, IntervalSweep):
        low, high = value.start, value.end
        if low is None or high is None:
            raise SearchSpaceError(f"{name}={text}: interval() needs two bounds")
        if not low < high:
            raise SearchSpaceError(f"{name}={text}: low ({low}) must be < high ({high})")
        if log_scale and low <= 0:
            raise SearchSpaceError(f"{name}={text}: a log interval needs low > 0 (got low={low})")
        if isinstance(low, int) and isinstance(high, int):
            dist = IntDistribution(low, high, log=log_scale)
        else:
            dist = FloatDistribution(float(low), float(high), log=log_scale)
        return SearchParam(name, prefix, text, dist)

    raise SearchSpaceError(f"{name}={text}: {type(value).__name__} is not supported")


# --------------------------------------------------------------------------- validation
def parse_search_space(
    params: Mapping[str, Any] | None, arguments: Sequence[str] = ()
) -> tuple[dict[str, SearchParam], list[str]]:
    """Split ``hydra.sweeper.params`` + command-line ``arguments`` into a search space and
    fixed overrides. A later definition of a key replaces an earlier one.

    Raises:
        SearchSpaceError: naming the parameter, on bad grammar or bounds.
    """
    if params is not None and not isinstance(params, Mapping):
        raise SearchSpaceError(
            f"hydra.sweeper.params must be a mapping {{config.key: grammar}}, got {params!r}; "
            "e.g. 'hydra.sweeper.params={trainer.gamma: \"interval(0.9, 0.99)\"}'."
        )
    entries: list[tuple[str, str, str]] = []  # (origin label, override line, text)
    for key, val in (params or {}).items():
        text = str(val) if not isinstance(val, bool) else ("true" if val else "false")
        entries.append((f"hydra.sweeper.params[{key!r}]", f"{key}={text}", text))
    for arg in arguments:
        entries.append((f"command-line override {arg!r}", arg, arg.split("=", 1)[-1]))

    space: dict[str, SearchParam] = {}
    fixed: dict[str, str] = {}
    for origin, line, text in entries:
        try:
            override = parse_override(line)
        except Exception as e:
            raise SearchSpaceError(f"{origin}: cannot parse {line!r}: {e}") from e
        name = key_name(override)
        if override.is_sweep_override():
            if isinstance(override.value(), Glob):
                raise SearchSpaceError(f"{name}={text}: glob() is not supported by Optuna")
            try:
                space[name] = _distribution_from_override(name, text, override)
            except SearchSpaceError:
                raise
            except Exception as e:
                raise SearchSpaceError(f"{name}={text}: {type(e).__name__}: {e}") from e
            fixed.pop(name, None)
        else:
            fixed[name] = override.input_line or line
            space.pop(name, None)
    return space, list(fixed.values())


def check_composition(
    space: dict[str, SearchParam],
    fixed: list[str],
    extra: list[str],
    validate_batch: Callable[[list[list[str]]], None],
) -> None:
    """Check that the overrides compose with the app's config, so that a typo in a
    key fails here and not in every trial.

    Args:
        space: The searched parameters; each is tried with its example values.
        fixed: The fixed overrides.
        extra: The overrides the sweeper adds to every job (trial node, seed, ...).
        validate_batch: The Sweeper's ``validate_batch_is_legal``.

    Raises:
        SweeperConfigError: the app config does not accept ``extra``.
        SearchSpaceError: naming the first override that does not compose.
    """
    first = {name: p.override(p.example_values()[0]) for name, p in space.items()}
    batches = [[*fixed, *first.values(), *extra]]
    for name, p in space.items():
        for v in p.example_values()[1:]:
            batches.append([*fixed, *{**first, name: p.override(v)}.values(), *extra])
    try:
        validate_batch(batches)
        return
    except Exception as e:
        combined = e
    try:
        validate_batch([[*fixed, *extra]])
    except Exception as e:
        raise SweeperConfigError(
            f"the app config does not accept the sweeper's overrides {extra}: {e}"
        ) from e
    for name, p in space.items():  # find the culprit
        for v in p.example_values():
            try:
                validate_batch([[*fixed, p.override(v), *extra]])
            except Exception as e:
                raise SearchSpaceError(
                    f"{name}={p.text}: the override {p.override(v)!r} does not compose: {e}"
                ) from e
    raise SearchSpaceError(f"the search space overrides do not compose: {combined}") from combined


def check_values(
    space: dict[str, SearchParam],
    fixed: list[str],
    extra: list[str],
    compose: Callable[[list[str]], Any],
    check: Callable[[Any], None],
) -> None:
    """Run the app's own config check on every bound of every searched parameter
    (one parameter at a time, the others as configured), so that values the app
    refuses at run time fail here, before the study opens, and not in every trial.

    Args:
        space: The searched parameters.
        fixed: The fixed overrides.
        extra: The overrides the sweeper adds to every job.
        compose: Overrides -> the job's config, as the job will see it.
        check: The app's check (raises on a config it refuses).

    Raises:
        SearchSpaceError: naming the parameter, the value and the app's message.
    """
    for name, p in space.items():
        for value in p.bound_values():
            try:
                check(compose([*fixed, p.override(value), *extra]))
            except Exception as e:
                msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                raise SearchSpaceError(
                    f"{name}={p.text}: the app refuses {p.override(value)!r}: {msg}"
                ) from e
