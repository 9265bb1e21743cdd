"""Typed experiment configs: presets, ``key=value`` overrides, and clear errors for bad keys.

A field's type says what it accepts, its constraints included: ``steps: Count`` (an integer
>= 1), ``lr: Positive``, ``k: Counts`` (a non-empty list of integers >= 1), ``gates: GateFamily``
(a ``Literal``). Everything declared is checked when the config is built, before a run
directory is written; ``__post_init__`` keeps only the checks that relate several fields.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import math
import types
import typing
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from galu.nn._ggdln import OLD_GATE_FAMILIES


@dataclasses.dataclass(frozen=True)
class Bound:
    """A numeric constraint declared in a field's type: ``Annotated[int, Bound(ge=1)]``.

    ``ge``/``gt`` and ``le``/``lt`` are inclusive/exclusive bounds; ``finite`` also refuses
    ``inf`` and ``nan``. On a list type's items it constrains every item.
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    finite: bool = False

    def ok(self, v: float) -> bool:
        return (
            (not self.finite or math.isfinite(v))
            and (self.ge is None or v >= self.ge)
            and (self.gt is None or v > self.gt)
            and (self.le is None or v <= self.le)
            and (self.lt is None or v < self.lt)
        )

    def describe(self, tp: Any = float, *, plural: bool = False) -> str:
        """``>= 1``, ``a finite number > 0``, ``integers >= 1``, ``values in [0, 2]``..."""
        lo = (f"[{self.ge:g}" if self.ge is not None else f"({self.gt:g}" if self.gt is not None
              else None)  # fmt: skip
        hi = (f"{self.le:g}]" if self.le is not None else f"{self.lt:g})" if self.lt is not None
              else None)  # fmt: skip
        if lo and hi:
            text = f"in {lo}, {hi}"
        elif lo:
            text = (">= " if lo[0] == "[" else "> ") + lo[1:]
        elif hi:
            text = ("<= " if hi[-1] == "]" else "< ") + hi[:-1]
        else:  # no bound, only finiteness
            return "finite values" if plural else "a finite number"
        noun = "integers" if tp is int else "numbers"
        if plural:
            return f"{'finite ' if self.finite else ''}{noun if lo and not hi else 'values'} {text}"
        return f"a finite number {text}" if self.finite else text


class NonEmpty:
    """Marks a list field that must name at least one value: ``Annotated[tuple[...], NonEmpty]``."""


# The constraints fields use most; a field with its own range declares a Bound in its type.
Count = Annotated[int, Bound(ge=1)]
NonNegativeInt = Annotated[int, Bound(ge=0)]
Positive = Annotated[float, Bound(gt=0)]
PositiveFinite = Annotated[float, Bound(gt=0, finite=True)]
NonNegativeFinite = Annotated[float, Bound(ge=0, finite=True)]
Fraction = Annotated[float, Bound(gt=0, lt=1)]
Probability = Annotated[float, Bound(ge=0, le=1)]
_T = typing.TypeVar("_T")
Some = Annotated[tuple[_T, ...], NonEmpty]  # ``Some[Model]``: a non-empty list of choices
Counts = Some[Count]
Positives = Some[Positive]
AtLeast2 = Annotated[int, Bound(ge=2)]


def _annotated(tp: Any) -> tuple[Any, tuple[Any, ...]]:
    """``Annotated[T, *meta]`` → ``(T, meta)``; any other type → ``(tp, ())``."""
    if typing.get_origin(tp) is Annotated:
        base, *meta = typing.get_args(tp)
        return base, tuple(meta)
    return tp, ()


@functools.cache
def _declared_types(cls: type) -> tuple[tuple[str, Any], ...]:
    """Each field of config class ``cls`` with its full type, constraints included (resolved
    once per class: every config built, saved runs and sweep tasks included, checks them)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))


def check_declared(config: Any) -> None:
    """Raise ValueError naming the first field of ``config`` that breaks a declared constraint
    (a :class:`Bound`, :class:`NonEmpty`, or a ``Literal`` choice)."""
    cls: type = type(config)
    for name, tp in _declared_types(cls):
        _check_value(name, tp, getattr(config, name))


def _check_value(name: str, tp: Any, value: Any) -> None:
    base, meta = _annotated(tp)
    origin = typing.get_origin(base)
    if value is None:
        return
    if origin in (typing.Union, types.UnionType):  # Optional[T]: None returned above
        for arg in typing.get_args(base):
            if arg is not type(None):
                _check_value(name, Annotated[arg, *meta] if meta else arg, value)
        return
    if origin in (tuple, list):
        item_base, item_meta = _annotated(typing.get_args(base)[0])
        if NonEmpty in meta and not value:
            choices = typing.get_args(item_base) if typing.get_origin(item_base) is typing.Literal \
                else None  # fmt: skip
            hint = f"choose from {choices}" if choices else "list at least one value"
            raise ValueError(f"`{name}` is empty; {hint}.")
        for bound in (m for m in item_meta if isinstance(m, Bound)):
            if not all(bound.ok(v) for v in value):
                raise ValueError(
                    f"`{name}` (={value!r}) must list {bound.describe(item_base, plural=True)}."
                )
        if typing.get_origin(item_base) is typing.Literal:
            choices = typing.get_args(item_base)
            bad = [v for v in value if v not in choices]
            if bad:
                raise ValueError(f"`{name}` has {bad[0]!r}; valid: {choices}.")
        return
    if typing.get_origin(base) is typing.Literal and value not in typing.get_args(base):
        raise ValueError(f"`{name}` (={value!r}) must be one of {typing.get_args(base)}.")
    for bound in (m for m in meta if isinstance(m, Bound)):
        if not bound.ok(value):
            raise ValueError(f"`{name}` (={value!r}) must be {bound.describe(base)}.")


@dataclasses.dataclass(frozen=True)
class BaseConfig:
    """Fields every experiment config has.

    Attributes:
        seed: base seed; repeat ``r`` runs with seed ``seed + r``.
        repeats: independent repeats (seeds) per grid point.
    """

    seed: NonNegativeInt = 0
    repeats: Count = 1

    def __post_init__(self) -> None:
        check_declared(self)

    def seeds(self) -> list[int]:
        return [self.seed + r for r in range(self.repeats)]

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON values (tuples become lists), as stored in config.json."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


class ConfigError(ValueError):
    """A config key or value a user gave is not valid."""


# Config keys and values renamed in galu 0.2 (old → new). The old names are read (with a warning)
# until 0.3, in presets, ``--set`` / ``--grid`` and the config.json of earlier runs, so those still
# resume. ``root`` defaulted to "" (no directory), which is ``data_dir=None`` now.
RENAMED_KEYS: dict[str, str] = {"root": "data_dir"}
RENAMED_VALUES: dict[str, dict[Any, Any]] = {"gates": OLD_GATE_FAMILIES}


def _renamed_key(key: str, *, warn: bool) -> str:
    new = RENAMED_KEYS.get(key)
    if new is None:
        return key
    _warn_renamed(f"config key {key!r} is now {new!r}", warn=warn)
    return new


def _renamed_value(key: str, value: Any, *, warn: bool) -> Any:
    table = RENAMED_VALUES.get(key, {})
    if not (isinstance(value, str) and value in table):
        return value
    _warn_renamed(f"{key}={value!r} is now {key}={table[value]!r}", warn=warn)
    return table[value]


def upgrade_keys(mapping: Mapping[str, Any], *, warn: bool = True) -> dict[str, Any]:
    """``mapping`` with renamed keys (:data:`RENAMED_KEYS`) under their new names and renamed
    values (:data:`RENAMED_VALUES`) replaced."""
    out: dict[str, Any] = {}
    for key, value in mapping.items():
        new = _renamed_key(key, warn=warn)
        if key == "root" and value == "":  # the old default: no directory
            value = None
        out[new] = _renamed_value(new, value, warn=warn)
    return out


def upgrade_grid(grid: Mapping[str, Any]) -> dict[str, Any]:
    """``--grid`` axes with renamed keys and values: an axis is a ``"v1,v2"`` string or a list,
    and keeps its form."""
    out: dict[str, Any] = {}
    for key, values in grid.items():
        new = _renamed_key(key, warn=True)
        if isinstance(values, str):
            parts = (_renamed_value(new, v.strip(), warn=True) for v in values.split(","))
            out[new] = ",".join(parts)
        elif isinstance(values, list | tuple):
            out[new] = [_renamed_value(new, v, warn=True) for v in values]
        else:
            out[new] = _renamed_value(new, values, warn=True)
    return out


def _warn_renamed(what: str, *, warn: bool) -> None:
    if warn:
        warnings.warn(f"{what}; the old name goes in galu 0.3.", DeprecationWarning, stacklevel=5)


def check_local_inputs(config: Any) -> None:
    """Refuse a ``data_dir`` / ``text_file`` that does not exist. :func:`resolve` runs this for
    every run it starts, before a run directory is written (a typo would otherwise fail every
    point, and the corrected command would be a "different run"); a saved config is not
    checked, so a finished run can be re-plotted after its data moved."""
    for name, is_kind, kind in (("data_dir", Path.is_dir, "directory"),
                                ("text_file", Path.is_file, "file")):  # fmt: skip
        value = getattr(config, name, None)
        if value is not None and not is_kind(Path(value).expanduser()):
            raise ConfigError(f"`{name}` (={value!r}) is not an existing {kind}.")


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce_scalar(key: str, tp: type, value: Any) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"`{key}` expects true/false; got {value!r}.")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"`{key}` expects an integer; got {value!r}.")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"`{key}` expects a number; got {value!r}.")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"`{key}` expects a string; got {value!r}.")
    args = typing.get_args(tp)
    if typing.get_origin(tp) is typing.Literal:
        if value in args:
            return value
        raise ConfigError(f"`{key}` must be one of {args}; got {value!r}.")
    raise TypeError(f"config field `{key}` has unsupported type {tp!r}")  # programming error


def _split(text: str) -> list[str]:
    """``a, b`` (or ``'a', "b"``) → ``["a", "b"]``."""
    return [v.strip().strip("'\"") for v in text.split(",") if v.strip()]


def coerce(key: str, tp: Any, value: Any) -> Any:
    """Convert ``value`` (possibly a CLI string) to the field type ``tp`` or raise ConfigError."""
    origin = typing.get_origin(tp)
    if origin in (tuple, list):
        (item_tp, *_rest) = typing.get_args(tp)
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as exc:
                    if not text.endswith("]") or "[" in text[1:-1] or "]" in text[1:-1]:
                        raise ConfigError(
                            f"`{key}`: cannot parse {value!r} as a list; write a comma list "
                            f"({key}=a,b), brackets ({key}=[a,b]) or JSON ({key}='[\"a\", 2]')."
                        ) from exc
                    value = _split(text[1:-1])  # [relu,galu]: unquoted strings in brackets
            else:
                value = _split(text)
        if not isinstance(value, list | tuple):
            value = [value]
        return tuple(coerce(f"{key}[{i}]", item_tp, v) for i, v in enumerate(value))
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return coerce(key, args[0], value)
    return _coerce_scalar(key, tp, value)


def resolve(
    config_cls: type,
    presets: Mapping[str, Mapping[str, Any]],
    preset: str,
    overrides: Mapping[str, Any] | None = None,
    *,
    source: str = "--set",
    check_paths: bool = True,
) -> Any:
    """Config from the class defaults, then ``presets[preset]``, then ``overrides``.

    Unknown keys and unknown presets raise :class:`ConfigError` naming the valid choices;
    ``source`` names where ``overrides`` came from in that message (``--set``, ``--grid``).
    ``check_paths`` also refuses local inputs that do not exist (:func:`check_local_inputs`).
    """
    if preset not in presets:
        raise ConfigError(f"unknown preset {preset!r}; valid presets: {', '.join(presets)}.")
    types_ = _field_types(config_cls)
    values: dict[str, Any] = {}
    for origin, mapping in (
        ("preset " + repr(preset), presets[preset]),
        (source, overrides or {}),
    ):
        for key, value in upgrade_keys(mapping).items():
            if key not in types_:
                close = difflib.get_close_matches(key, types_, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ConfigError(
                    f"unknown config key {key!r} (from {origin}).{hint} "
                    f"Valid keys: {', '.join(types_)}."
                )
            values[key] = coerce(key, types_[key], value)
    try:
        config = config_cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from exc
    if check_paths:
        check_local_inputs(config)
    return config


def parse_overrides(items: list[str] | None) -> dict[str, str]:
    """``["k=v", ...]`` → ``{"k": "v"}``; each item must contain ``=``."""
    out: dict[str, str] = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value; got {item!r}.")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


def _type_name(tp: Any) -> str:
    return _plain_type_name(_annotated(tp)[0])


def constraint_text(tp: Any) -> str:
    """What a field's declared constraints accept, in words (``>= 1``; ``non-empty, each >= 1``);
    empty when it declares none."""
    base, meta = _annotated(tp)
    if typing.get_origin(base) in (typing.Union, types.UnionType):
        parts = [
            constraint_text(Annotated[a, *meta] if meta else a)
            for a in typing.get_args(base)
            if a is not type(None)
        ]
        return "; ".join(p for p in parts if p)
    if typing.get_origin(base) in (tuple, list):
        item_base, item_meta = _annotated(typing.get_args(base)[0])
        parts = ["non-empty"] if NonEmpty in meta else []
        parts += [f"each {b.describe(item_base)}" for b in item_meta if isinstance(b, Bound)]
        return ", ".join(parts)
    return ", ".join(b.describe(base) for b in meta if isinstance(b, Bound))


def _plain_type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (tuple, list):
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if origin in (typing.Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "none"
    return getattr(tp, "__name__", str(tp))


def _field_comments(config_cls: type) -> dict[str, str]:
    """The ``# comment`` after each field in the config classes' source (their documentation)."""
    import inspect
    import re

    out: dict[str, str] = {}
    for klass in reversed(config_cls.__mro__):
        if not dataclasses.is_dataclass(klass):
            continue
        try:
            lines = inspect.getsource(klass).splitlines()
        except (OSError, TypeError):
            continue
        for line in lines:
            m = re.match(r"\s+(\w+)\s*:[^#]*#\s*(.+)$", line)
            if m and not m.group(2).startswith(("type:", "fmt:", "noqa")):
                out[m.group(1)] = m.group(2).strip()
    out.setdefault("seed", "base seed; repeat r runs with seed + r")
    out.setdefault("repeats", "independent repeats (seeds) per grid point")
    return out


def config_table(cls: Any, preset: str) -> Any:
    """Every config key of experiment class ``cls``: type, value at ``preset``, default and
    description, as a DataFrame (what ``galu run NAME --show-config`` prints)."""
    import pandas as pd

    config = resolve(cls.Config, cls.presets, preset)
    defaults = cls.Config()
    comments = _field_comments(cls.Config)
    rows = []
    for name, tp in _declared_types(cls.Config):
        value, default = getattr(config, name), getattr(defaults, name)

        def show(v: Any) -> str:
            return ",".join(map(str, v)) if isinstance(v, tuple) else str(v)

        rows.append(
            {
                "key": name,
                "type": _type_name(tp),
                f"value ({preset})": show(value),
                "default": show(default),
                "valid": constraint_text(tp),
                "description": comments.get(name, ""),
            }
        )
    return pd.DataFrame(rows)
