"""Typed option sets, declared once as frozen dataclasses that check themselves.

A pass declares its parameters and a runtime its settings as a subclass of
`Options`, each field with `option(default, "what it does")`: the defaults are the
dataclass's own, and the one-line description is what `workbench list` and the errors
show, so a user learns what an option does without reading the code. `parse` turns the
loose mapping a user or a JSON job gives into an instance, and refuses an unknown or
ill-typed option with one line that lists the valid ones, e.g.

    pass 'torch_onnx' has no parameter 'opsett': it takes opset (an integer; default 18):
    the ONNX opset ...; dynamo (true or false or one of auto; default 'auto'): ...

Supported annotations: bool, int, float, str, Literal[...], and unions of these
with None. A subclass adds range checks in `__post_init__` (raise `UserError`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Literal, NamedTuple, Self, TypeVar, get_args, get_origin

from workbench.errors import UserError

T = TypeVar("T")

DESCRIPTION = "description"  # the key of a field's metadata that `option` fills


def option(default: T, description: str) -> T:
    """A field of an `Options` subclass: its default and a one-line description of what it
    does (for `workbench list` and the unknown-option error), e.g.
    `opset: int = option(18, "the ONNX opset the exported graph targets")`."""
    return dataclasses.field(default=default, metadata={DESCRIPTION: description})


class OptionField(NamedTuple):
    """One option as `describe_fields` gives it: the parts a listing lays out."""

    name: str
    type: str  # as messages word it: "an integer", "one of off, fp16, bf16"
    default: Any
    description: str  # "" when the field was declared without `option`

    def text(self) -> str:
        """`name (type; default value): description`, as `describe` and listings word it."""
        head = f"{self.name} ({self.type}; default {self.default!r})"
        return f"{head}: {self.description}" if self.description else head


@dataclasses.dataclass(frozen=True)
class Options:
    """Base class of every typed option set (a pass's parameters, a runtime's settings)."""

    owner: ClassVar[str] = "options"  # for messages, when parse is not told: "pass 'x'"

    def __post_init__(self) -> None:
        """Direct construction is checked too (`parse` words the error with its owner).
        A subclass with range checks calls this first."""
        hints = typing.get_type_hints(type(self))
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            converted = _check(
                type(self).__name__, "option", field.name, value, hints[field.name], type(self)
            )
            if converted is not value:
                object.__setattr__(self, field.name, converted)

    @classmethod
    def parse(
        cls,
        values: Mapping[str, Any] | None = None,
        owner: str | None = None,
        noun: str = "option",
    ) -> Self:
        """An instance from `values` (missing names take their defaults). `owner` and
        `noun` word the error: "pass 'torch_onnx' has no parameter 'opsett': ..."."""
        who = owner or cls.owner
        values = dict(values or {})
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            names = ", ".join(repr(n) for n in unknown)
            plural = "s" if len(unknown) > 1 else ""
            raise UserError(f"{who} has no {noun}{plural} {names}: it takes {cls.describe()}")
        hints = typing.get_type_hints(cls)
        checked = {}
        for name, value in values.items():
            checked[name] = _check(who, noun, name, value, hints[name], cls)
        return cls(**checked)

    @classmethod
    def describe_fields(cls) -> list[OptionField]:
        """Every option's name, type, default and description, in declaration order."""
        hints = typing.get_type_hints(cls)
        return [
            OptionField(
                f.name, _type_text(hints[f.name]), _default(f), f.metadata.get(DESCRIPTION, "")
            )
            for f in dataclasses.fields(cls)
        ]

    @classmethod
    def describe(cls) -> str:
        """Every option on one line, `name (type; default value): description; ...` (the
        description when it has one), or `no options`."""
        return "; ".join(f.text() for f in cls.describe_fields()) or "no options"

    def to_dict(self) -> dict[str, Any]:
        """Every option with its value (defaults included), JSON-ready."""
        return dataclasses.asdict(self)

    def changed(self) -> dict[str, Any]:
        """Only the options whose value differs from the default."""
        defaults = type(self)()
        return {k: v for k, v in self.to_dict().items() if getattr(defaults, k) != v}


@dataclasses.dataclass(frozen=True)
class NoOptions(Options):
    """For a pass or runtime that takes none."""


def _default(field: dataclasses.Field[Any]) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return None


def _type_text(hint: Any) -> str:
    """How a message names a type: `true or false`, `one of disable, basic, all`..."""
    origin = get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(_literal_text(a) for a in get_args(hint))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_text(a) for a in get_args(hint))
    if hint is type(None):
        return "null (unset)"
    if hint is bool:
        return "true or false"
    return {int: "an integer", float: "a number", str: "a string"}.get(
        hint, getattr(hint, "__name__", str(hint))
    )


def _literal_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _matches(value: Any, hint: Any) -> tuple[bool, Any]:
    """(fits, value converted) for one annotation."""
    origin = get_origin(hint)
    if origin is Literal:
        # type-exact, so True does not pass for 1 nor 1 for True
        return any(type(a) is type(value) and a == value for a in get_args(hint)), value
    if origin in (typing.Union, types.UnionType):
        for arg in get_args(hint):
            fits, converted = _matches(value, arg)
            if fits:
                return True, converted
        return False, value
    if hint is type(None):
        return value is None, value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        return False, value
    if hint is str:
        return isinstance(value, str), value
    return isinstance(value, hint), value


def _check(who: str, noun: str, name: str, value: Any, hint: Any, cls: type[Options]) -> Any:
    fits, converted = _matches(value, hint)
    if not fits:
        raise UserError(
            f"{who}: {noun} {name} must be {_type_text(hint)}, got {value!r}; "
            f"it takes {cls.describe()}"
        )
    return converted
