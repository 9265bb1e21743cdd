"""Argument checks shared by the whole library: one wording per kind of error.

Every check names the argument, shows the value and says what is valid, and returns the value
so that it can be used inline (``self.k = positive_int("k", k)``). ``bool`` is never accepted
as a number.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
from typing import Any, TypeVar

T = TypeVar("T")


def _is_int(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def positive_int(name: str, value: Any, *, none_ok: bool = False) -> Any:
    """``value`` if it is an integer ``>= 1`` (or ``None`` with ``none_ok``)."""
    if none_ok and value is None:
        return value
    if not _is_int(value) or value < 1:
        valid = "a positive integer or None" if none_ok else "a positive integer"
        raise ValueError(f"`{name}` (={value!r}) must be {valid}.")
    return value


def int_at_least(name: str, value: Any, minimum: int) -> int:
    """``value`` if it is an integer ``>= minimum``."""
    if not _is_int(value) or value < minimum:
        raise ValueError(f"`{name}` (={value!r}) must be an integer >= {minimum}.")
    return int(value)


def positive_number(
    name: str, value: Any, *, finite: bool = False, unit: str = "", noun: str = "number"
) -> Any:
    """``value`` if it is a number ``> 0`` (and finite with ``finite``); ``unit`` ends the
    message (``"of seconds"``), ``noun`` names the kind (``"float"`` for a learning rate)."""
    ok = _is_number(value) and value > 0 and (not finite or math.isfinite(value))
    if not ok:
        what = f"a positive finite {noun}" if finite else f"a positive {noun}"
        raise ValueError(f"`{name}` (={value!r}) must be {what}{' ' + unit if unit else ''}.")
    return value


def one_of(name: str, value: T, valid: Sequence[Any]) -> T:
    """``value`` if it is one of ``valid``."""
    if value not in valid:
        raise ValueError(f"`{name}` (={value!r}) must be one of {', '.join(map(repr, valid))}.")
    return value


def required(owner: str, name: str, value: T | None) -> T:
    """``value``, or the TypeError Python gives for a missing argument (for arguments whose
    ``None`` default exists only so that an old keyword can stand in for them)."""
    if value is None:
        raise TypeError(f"{owner}() missing required argument `{name}`.")
    return value


def renamed(
    owner: str, new: str, new_value: Any, old: str, old_value: Any, *, needed: bool = False
) -> Any:
    """The value of argument ``new``, taking it from its old name ``old`` (with a
    DeprecationWarning, until galu 0.3) when only that was given; both given is an error, and
    neither is one when ``needed``. ``None`` means "not given" for both."""
    if old_value is None:
        return required(owner, new, new_value) if needed else new_value
    if new_value is not None:
        raise TypeError(f"{owner}: pass `{new}` only (`{old}` is its old name).")
    warnings.warn(
        f"{owner}: `{old}` is now `{new}`; the old name goes in galu 0.3.",
        DeprecationWarning,
        stacklevel=3,
    )
    return old_value
