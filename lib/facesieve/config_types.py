"""Typed checks for config values, driven by the dataclasses' own type hints.

A YAML file or a ``--set`` flag can hold any type; a dataclass accepts anything. Without a check,
``shard_size: "fifty"`` got as far as a comparison and ended in a traceback. Here each value is
checked against its field's hint before a section is built, so the error names the key, the type
it wants and the value it got. Rules: ints are accepted for floats (``det_threshold: 1`` is 1.0),
bools are strict (``flip: 1`` or ``flip: "yes"`` is an error, not True), ``X | None`` accepts null.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

import yaml

from facesieve.errors import ConfigError

_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def hints(cls: type) -> dict[str, Any]:
    """Field name -> resolved type hint of a config dataclass."""
    resolved = typing.get_type_hints(cls)
    return {f.name: resolved[f.name] for f in dataclasses.fields(cls)}


def _parts(hint: Any) -> tuple[list[type], bool]:
    """(the non-None types of ``hint``, whether None is allowed)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        return [a for a in args if a is not type(None)], type(None) in args
    return [hint], False


def type_text(hint: Any) -> str:
    """How the error message and the docs name a type: 'an integer', 'a string or null'."""
    kinds, nullable = _parts(hint)
    text = " or ".join(_NAMES.get(k, getattr(k, "__name__", str(k))) for k in kinds)
    return text + (" or null" if nullable else "")


def short_type(hint: Any) -> str:
    """``int``, ``float``, ``str or null``: the type column of the reference table."""
    kinds, nullable = _parts(hint)
    return " or ".join([k.__name__ for k in kinds] + (["null"] if nullable else []))


def _matches(kind: type, value: Any) -> bool:
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, kind)


def check_value(hint: Any, value: Any, where: str) -> Any:
    """``value`` converted to the field's type (int -> float), or ConfigError naming ``where``."""
    kinds, nullable = _parts(hint)
    if value is None and nullable:
        return None
    for kind in kinds:
        if _matches(kind, value):
            return float(value) if kind is float else value
    hint_text = ""
    if str in kinds and isinstance(value, bool):  # YAML reads unquoted yes/no/on/off as bools
        hint_text = "; quote it in YAML, e.g. aligned: 'yes'"
    raise ConfigError(
        f"{where}: expected {type_text(hint)}, got {value!r} ({type(value).__name__}){hint_text}"
    )


def check_keys(cls: type, values: dict[str, Any], where: str) -> None:
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f"unknown key(s) in {where}: {', '.join(unknown)}; known: {known}")


def checked(cls: type, values: dict[str, Any], section: str) -> dict[str, Any]:
    """``values`` for section ``section`` of type ``cls``: known keys, each of the right type."""
    check_keys(cls, values, section)
    types_of = hints(cls)
    return {k: check_value(types_of[k], v, f"{section}.{k}") for k, v in values.items()}


def parse_assignment(text: str, sections: dict[str, type]) -> tuple[str, str, Any]:
    """``SECTION.KEY=VALUE`` (a ``--set`` flag) -> (section, key, typed value).

    VALUE is read as YAML (``0.5``, ``true``, ``null``), except for a string field, which takes
    the text as written (``--set faces.detector=123.onnx``, ``--set index.memory=8G``)."""
    name, eq, raw = text.partition("=")
    section, dot, key = name.strip().partition(".")
    if not eq or not dot or not key:
        raise ConfigError(f"--set {text!r}: expected SECTION.KEY=VALUE, e.g. clean.min_face_px=40")
    if section not in sections:
        raise ConfigError(f"--set {text!r}: unknown section {section!r}; known: {list(sections)}")
    cls = sections[section]
    check_keys(cls, {key: None}, section)
    hint = hints(cls)[key]
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    kinds, _ = _parts(hint)
    if str in kinds and value is not None and not isinstance(value, str):
        value = raw
    return section, key, check_value(hint, value, f"{section}.{key}")
