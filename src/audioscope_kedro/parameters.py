"""Parameter blocks parsed into typed dataclasses at the node boundary.

Kedro hands nodes plain dicts from the YAML files; each recipe declares its block as a
dataclass and :func:`parse` builds it, recursively for nested dataclasses, converting lists to
tuples and strings to enums. A key that the dataclass does not have (a typo such as
``train.loop.stpes``) or a required key that is missing is an error that names it, instead of
a setting silently ignored.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class ParameterError(ValueError):
    """A parameter block does not fit its dataclass; the message names the key."""


def _convert(kind: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        if value is None:
            return None
        if len(options) == 1:
            return _convert(options[0], value, where)
        return value
    if dataclasses.is_dataclass(kind):
        if isinstance(value, kind):
            return value
        if not isinstance(value, Mapping):
            raise ParameterError(f"{where}: expected a mapping of settings, got {value!r}")
        return parse(kind, value, where)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        try:
            return kind(value)
        except ValueError:
            choices = ", ".join(repr(m.value) for m in kind)
            raise ParameterError(f"{where}: {value!r} is not one of {choices}") from None
    if origin is dict and isinstance(value, Mapping):
        _, value_kind = typing.get_args(kind)
        return {k: _convert(value_kind, v, f"{where}.{k}") for k, v in value.items()}
    if origin is tuple and isinstance(value, list | tuple):
        return tuple(value)
    if kind in _SCALARS:
        return _scalar(kind, value, where)
    return value


_SCALARS = (bool, int, float, str)


def _scalar(kind: type, value: Any, where: str) -> Any:
    """``value`` as ``kind``, or an error naming the key: a learning rate that arrives as a
    string would otherwise fail deep inside the optimiser, far from the YAML line."""
    if kind is float and not isinstance(value, bool):
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            # YAML 1.1 reads 3e-4 (no dot) as a string: take it, it can only mean the number
            try:
                return float(value)
            except ValueError:
                pass
    elif isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value  # bool is an int subclass: True is no step count
    raise ParameterError(f"{where}: expected {kind.__name__}, got {value!r}")


def parse(cls: type[T], data: Mapping[str, Any] | T, where: str) -> T:
    """``cls`` built from ``data``; ``where`` is the block's dotted name, for messages."""
    if isinstance(data, cls):
        return data
    if not isinstance(data, Mapping):
        raise ParameterError(f"{where}: expected a mapping of settings, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ParameterError(
            f"unknown parameter(s) {', '.join(f'{where}.{k}' for k in unknown)}; "
            f"{where} takes: {', '.join(sorted(fields))}"
        )
    hints = typing.get_type_hints(cls)
    values = {}
    for name, field in fields.items():
        if name in data:
            values[name] = _convert(hints[name], data[name], f"{where}.{name}")
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ParameterError(f"missing parameter {where}.{name}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as err:
        if isinstance(err, ParameterError):
            raise
        raise ParameterError(f"{where}: {err}") from err


def merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` laid over it, nested mappings merged key by key."""
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out
