"""A JSON object read into a frozen dataclass's typed fields and written back unchanged.

The machinery of :mod:`napari_unet.core.metadata`: :class:`JsonRecord` writes the typed
fields back in the order the keys were read, with the keys it does not type (``extra``)
and typed ones as read while the field still holds what was read of them (``read_as``);
:func:`read_key` reads one key with a parser and keeps a value it cannot type as read.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

_Self = TypeVar("_Self", bound="JsonRecord")


class JsonRecord:
    """Mixin: a JSON object read into typed fields, written back in its own key order."""

    extra: dict[str, Any]
    key_order: tuple[str, ...]
    read_as: dict[str, Any]  # the typed values of the keys ``extra`` keeps as read

    def _values(self) -> dict[str, Any]:
        """The JSON values of the typed fields that are written (in the fields' order)."""
        raise NotImplementedError

    def _ordered(self) -> dict[str, Any]:
        values = self._values()
        kept = {  # unknown keys, and typed ones as read while their typed value is unchanged
            key: value
            for key, value in self.extra.items()
            if key not in self.read_as or getattr(self, key) == self.read_as[key]
        }
        values.update(copy.deepcopy(kept))
        order = [key for key in self.key_order if key in values]
        order += [key for key in values if key not in self.key_order]
        return {key: values[key] for key in order}

    def replace(self: _Self, **changes: Any) -> _Self:
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


def data_fields(cls: type) -> tuple[str, ...]:
    """The names of the fields that hold JSON keys, in their order."""
    bookkeeping = ("extra", "key_order", "read_as")
    return tuple(f.name for f in dataclasses.fields(cls) if f.name not in bookkeeping)


def read_key(
    values: Mapping[str, Any],
    key: str,
    parse: Callable[[Any], tuple[Any, Any]],
    default: Any,
    extra: dict[str, Any],
) -> Any:
    """``values[key]`` read by ``parse``, which returns (typed, the JSON it writes back).

    When that JSON is not the value read, or it cannot be read at all (``default``), the
    value read goes to ``extra``, so that it is written back unchanged.
    """
    raw = values[key]
    try:
        typed, written = parse(raw)
    except (TypeError, ValueError, AttributeError):
        typed, written = default, _UNREADABLE
    if written is _UNREADABLE or not same_json(written, raw):
        extra[key] = copy.deepcopy(raw)
    return typed


_UNREADABLE = object()


def same_json(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b`` are written as the same JSON (``1`` is not ``1.0``)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def as_tuples(value: Any) -> Any:
    """Lists (at any depth) as tuples."""
    return tuple(as_tuples(item) for item in value) if isinstance(value, list) else value


def as_lists(value: Any) -> Any:
    """Tuples (at any depth) as lists, as JSON has them."""
    return [as_lists(item) for item in value] if isinstance(value, tuple) else value
