"""The types of a submission's hyperparameters: each field's type resolved (a user's file with
``from __future__ import annotations`` holds them as text), and a YAML or command-line value
checked and converted to it (``1`` -> ``1.0`` for a float, a list -> a tuple for a tuple), or
refused naming the hyperparameter, its value and the type (harness/submission.py's
``TrainingHparams.from_mapping``)."""

from __future__ import annotations

import dataclasses
import math
import sys
import types
import typing
from typing import Any

from harness.errors import UserError


def field_types(cls: type) -> dict[str, Any]:
    """Each field's type, resolved: ``from __future__ import annotations`` (common in a user's file)
    makes every annotation a string. A hint that cannot be resolved (a name imported only for a type
    checker) stays its text, and only that field goes unchecked."""
    fields = dataclasses.fields(cls)
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # one unresolvable hint fails them all: resolve each on its own
        hints = {field.name: _resolve_hint(cls, field) for field in fields}
    return {field.name: hints.get(field.name, field.type) for field in fields}


def _resolve_hint(cls: type, field: dataclasses.Field) -> Any:
    """One field's type, resolved in the module and class that annotate it; its text where it cannot be."""
    if not isinstance(field.type, str):
        return field.type
    owner = next((k for k in cls.__mro__ if field.name in vars(k).get("__annotations__", {})), cls)
    module = sys.modules.get(owner.__module__)
    holder = types.SimpleNamespace(__annotations__={field.name: field.type})
    try:
        return typing.get_type_hints(holder, globalns=dict(vars(module)) if module else {},
                                     localns=dict(vars(owner)))[field.name]
    except Exception:  # NameError for a name the module lacks, SyntaxError, TypeError: unchecked
        return field.type


_SIMPLE: dict[str, type] = {"float": float, "int": int, "bool": bool, "str": str}
_UNIONS = (typing.Union, types.UnionType)
_SEQUENCE_ADVICE = " (a list: [a, b, ...] in YAML or on the command line)"
class _Mismatch(Exception):
    """A value that is not of its field's type; a message, where given, says what is wrong instead."""


def coerce(name: str, value: Any, annotation: Any) -> Any:
    """Convert a YAML/CLI value to the field's type (``1`` -> ``1.0`` for a float, a list -> a tuple
    for a tuple), refusing one that is not of it: float, int, bool and str, ``X | None`` of one,
    ``list[X]`` and ``tuple[...]`` (a sequence, its items checked likewise); a UserError naming the
    hyperparameter, its value and the type. Other types are taken as they are."""
    hint = _SIMPLE.get(annotation, annotation) if isinstance(annotation, str) else annotation
    try:
        return _convert(value, hint)
    except _Mismatch as mismatch:
        advice = _SEQUENCE_ADVICE if _sequence_kind(hint) else ""
        rule = str(mismatch) or f"expected a value of type {_type_name(hint)}{advice}"
        raise UserError(f"Invalid hyperparameter {name}={value!r}: {rule}.") from None


def _convert(value: Any, hint: Any) -> Any:
    """``value`` as of type ``hint`` (see :func:`coerce`); _Mismatch when it is not."""
    if hint in (float, int, bool, str):
        return _simple(value, hint)
    arguments = typing.get_args(hint)
    if typing.get_origin(hint) in _UNIONS and type(None) in arguments:
        others = [a for a in arguments if a is not type(None)]
        if value is None or len(others) != 1:  # a union of several types: not checked
            return value
        return _convert(value, others[0])
    kind = _sequence_kind(hint)
    if kind is None:
        return value
    if not isinstance(value, (list, tuple)):
        raise _Mismatch
    if kind is tuple and arguments and arguments[-1] is not Ellipsis:  # tuple[float, float]: so many items
        if len(arguments) != len(value):
            raise _Mismatch
        return tuple(_convert(item, a) for item, a in zip(value, arguments, strict=True))
    item_hint = arguments[0] if arguments else Any
    return kind(_convert(item, item_hint) for item in value)


def _simple(value: Any, kind: type) -> Any:
    """``value`` as a float, int, bool or str (a number for a number: never a bool)."""
    if isinstance(value, bool) and kind is not bool:
        raise _Mismatch
    if kind in (bool, str):
        if not isinstance(value, kind):
            raise _Mismatch
        return value
    try:
        number = float(value)
        if kind is int:
            if number != int(value):
                raise _Mismatch
            return int(value)
    except (TypeError, ValueError, OverflowError):
        raise _Mismatch from None
    if not math.isfinite(number):
        raise _Mismatch("it must be a finite number")
    return number


def _sequence_kind(hint: Any) -> type | None:
    """``list`` or ``tuple`` for a hint of either (bare or subscripted), else None."""
    kind = typing.get_origin(hint) or hint
    return kind if kind in (list, tuple) else None


def _type_name(hint: Any) -> str:
    """A type as a message writes it: ``float``, ``float or None``, ``tuple[float, float]``."""
    if isinstance(hint, type) and not typing.get_args(hint):
        return hint.__name__
    arguments = typing.get_args(hint)
    if typing.get_origin(hint) in _UNIONS:
        return " or ".join("None" if a is type(None) else _type_name(a) for a in arguments)
    kind = _sequence_kind(hint)
    if kind is not None:
        return f"{kind.__name__}[{', '.join('...' if a is Ellipsis else _type_name(a) for a in arguments)}]"
    return str(hint).replace("typing.", "")


