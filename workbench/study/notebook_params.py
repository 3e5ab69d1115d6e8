"""Notebook parameters: declared once, typed, checked before any work starts.

A notebook declares its parameters in the cell tagged `parameters`, one annotated
assignment per line with a comment (papermill lists them with `--help-notebook`):

    profile: str = "ci"  # "ci": tiny sizes for CI; "quick": short; "full": the real study
    batch_sizes: list[int] = []  # empty: the profile's choice

papermill injects overrides as a new cell *after* that one, so nothing stops a
misspelt name or a wrongly typed value by itself (papermill only logs a warning
for an unknown name). The notebook therefore brackets the parameters cell:

    notebook_params.begin(globals())      # first code cell, before `parameters`
    ...parameters cell, then papermill's injected cell...
    P = notebook_params.check(globals())  # first cell after them

`check` takes the declared names and types from the annotations, treats every
other name assigned by papermill's injected cell (found in IPython's input history;
outside IPython: every public name new since `begin`) as an unknown parameter, and
checks each value against its declared type, raising `ParameterError` that names
the parameter and the expected type. The runner (`workbench.study.notebooks`) applies
the same checks to the names and type strings `papermill.inspect_notebook`
reports, so `workbench notebooks run` refuses bad input before starting a kernel.

Annotations stick to what papermill's parser reads: a name, or a name with
bracketed arguments (`list[int]`, `dict[str, float]`); no `X | None`. An empty
list or string conventionally means "the profile decides".
"""

from __future__ import annotations

import ast
import types
import typing
from collections.abc import Iterator, Mapping
from typing import Any

from workbench.errors import UserError
from workbench.logs import configure_logging
from workbench.profiles import PROFILE_NAMES

PROFILES = PROFILE_NAMES  # workbench.profiles: ci, quick, full
# Values some parameters must take, whatever the notebook.
CHOICES: dict[str, tuple[str, ...]] = {"profile": PROFILES}
# Names IPython puts in the user namespace by itself.
_IPYTHON_NAMES = frozenset({"In", "Out", "get_ipython", "exit", "quit", "open"})
_BEGIN_KEY = "_workbench_names_before_parameters"
PAPERMILL_HEADER = "# Parameters"  # first line of the cell papermill injects
_SIMPLE_TYPES: dict[str, type] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "list": list,
    "dict": dict,
    "tuple": tuple,
}


class ParameterError(UserError):
    """A notebook parameter that the notebook does not declare, or of the wrong type."""


class Params(Mapping[str, Any]):
    """The checked parameters; read them as attributes (`P.profile`) or as a mapping."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = dict(values)

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_values"][name]
        except KeyError:
            raise AttributeError(name) from None

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return "Params(" + ", ".join(f"{k}={v!r}" for k, v in self._values.items()) + ")"


def begin(namespace: dict[str, Any]) -> None:
    """Remember which names exist, and how many cells ran, before the parameters cell.
    Every notebook's first cell calls it, so it also decides what a reader sees of the
    library's logs: info records (what is being trained, warnings) in the cell's output,
    as the CLI shows them on a terminal; no progress bars."""
    configure_logging(progress_bars=False)
    history = namespace.get("In")
    namespace[_BEGIN_KEY] = (
        frozenset(namespace),
        len(history) if isinstance(history, list) else None,
    )


def _assigned_names(sources: list[str]) -> set[str]:
    names: set[str] = set()
    for source in sources:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
    return names


def _injected_names(namespace: dict[str, Any]) -> set[str]:
    """Names the caller may have passed as parameters since `begin`.

    In IPython (`In` holds every executed cell's source) these are the names assigned by
    papermill's injected cells, which start with its `# Parameters` header; so names left
    over from earlier interactive runs (e.g. `frame` when a JupyterLab user reruns the
    check) are not mistaken for parameters. Elsewhere: every public name new since begin.
    """
    before, history_len = namespace[_BEGIN_KEY]
    history = namespace.get("In")
    if isinstance(history, list) and history_len is not None:
        injected = [
            src for src in history[history_len:] if src.lstrip().startswith(PAPERMILL_HEADER)
        ]
        return _assigned_names(injected)
    return {
        n
        for n in set(namespace) - before
        if not n.startswith("_")
        and n not in _IPYTHON_NAMES
        and not isinstance(namespace[n], types.ModuleType)
    }


def type_name(tp: Any) -> str:
    """`list[int]`, `str`, ... as written in a parameters cell."""
    if isinstance(tp, str):
        return tp
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is not None and args:
        return f"{type_name(origin)}[{', '.join(type_name(a) for a in args)}]"
    return str(tp)


def parse_type(text: str) -> Any:
    """The type a papermill type string names: `int`, `list[int]`, `dict[str, float]`."""
    text = text.strip()
    if "[" not in text:
        if text not in _SIMPLE_TYPES:
            raise ValueError(f"unsupported parameter type {text!r}")
        return _SIMPLE_TYPES[text]
    if not text.endswith("]"):
        raise ValueError(f"unsupported parameter type {text!r}")
    head, inner = text[: text.index("[")], text[text.index("[") + 1 : -1]
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(inner):
        depth += ch == "["
        depth -= ch == "]"
        if ch == "," and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    parts.append(inner[start:])
    origin = parse_type(head)
    args = tuple(parse_type(p) for p in parts)
    return types.GenericAlias(origin, args)


def matches(value: Any, tp: Any) -> bool:
    """Whether `value` has type `tp` (int counts as float, bool never as int)."""
    if tp is Any:
        return True
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return any(matches(value, a) for a in args)
    if origin is None:
        if tp is float:
            return isinstance(value, (int, float)) and not isinstance(value, bool)
        if tp is int:
            return isinstance(value, int) and not isinstance(value, bool)
        return isinstance(value, tp)
    if not isinstance(value, origin):
        return False
    if not args:
        return True
    if origin is list:
        return all(matches(v, args[0]) for v in value)
    if origin is dict:
        return all(matches(k, args[0]) and matches(v, args[1]) for k, v in value.items())
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return all(matches(v, args[0]) for v in value)
        return len(value) == len(args) and all(
            matches(v, a) for v, a in zip(value, args, strict=True)
        )
    return True


def _describe(spec: Mapping[str, Any]) -> str:
    return ", ".join(f"{name} ({type_name(tp)})" for name, tp in spec.items())


def check_values(values: Mapping[str, Any], spec: Mapping[str, Any], where: str = "") -> None:
    """Raise ParameterError for a name not in `spec` or a value not of its declared type.
    `spec` maps names to types or to papermill type strings."""
    where = f" of {where}" if where else ""
    resolved = {n: parse_type(t) if isinstance(t, str) else t for n, t in spec.items()}
    unknown = sorted(set(values) - set(resolved))
    if unknown:
        names = ", ".join(repr(u) for u in unknown)
        raise ParameterError(
            f"unknown notebook parameter{'s' if len(unknown) > 1 else ''} {names}{where}: "
            f"it takes {_describe(resolved)}"
        )
    for name, value in values.items():
        tp = resolved[name]
        if not matches(value, tp):
            raise ParameterError(
                f"notebook parameter {name!r}{where} must be {type_name(tp)}, "
                f"got {type(value).__name__} {value!r}"
            )
        if name in CHOICES and value not in CHOICES[name]:
            raise ParameterError(
                f"notebook parameter {name!r}{where} must be one of "
                f"{', '.join(map(repr, CHOICES[name]))}, got {value!r}"
            )


def check(namespace: dict[str, Any], spec: Mapping[str, Any] | None = None) -> Params:
    """Check the notebook's parameters in `namespace` (its `globals()`) and return them.

    `spec` (name -> type) defaults to the annotations of the parameters cell. A name
    papermill injected since `begin(namespace)` that is not in `spec` is an unknown
    parameter; every declared value must match its type. Raises ParameterError naming
    the parameter and the expected type.
    """
    if spec is None:
        spec = dict(namespace.get("__annotations__", {}))
    if not spec:
        raise ParameterError(
            "the notebook declares no typed parameters: write `name: type = default  # help` "
            "lines in the cell tagged `parameters`"
        )
    if _BEGIN_KEY not in namespace:
        raise ParameterError(
            "call workbench.study.notebook_params.begin(globals()) in a cell before the parameters cell"
        )
    new = {n for n in _injected_names(namespace) if n in namespace}
    missing = sorted(n for n in spec if n not in namespace)
    if missing:
        raise ParameterError(
            f"parameter{'s' if len(missing) > 1 else ''} {', '.join(missing)} declared but not "
            "assigned in the parameters cell"
        )
    values = {n: namespace[n] for n in spec}
    values.update({n: namespace[n] for n in new - set(spec)})
    check_values(values, spec)
    return Params({n: namespace[n] for n in spec})
