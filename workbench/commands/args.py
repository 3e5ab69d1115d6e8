"""What commands share on the way in: the parser, argument types, and readers of the
flags several commands (or several parts of `bench`) take.

Every reader raises UserError with one line saying what is wrong, so bad input exits with
code 2 and no traceback.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
from dataclasses import replace
from typing import Any, NoReturn, Protocol

from workbench.devices import parse_device
from workbench.errors import UserError
from workbench.harness.timing import StopRule
from workbench.profiles import get_profile


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are UserErrors: one line and exit code 2, like every
    other bad input."""

    def error(self, message: str) -> NoReturn:
        raise UserError(f"{message} (see `{self.prog} --help`)")


class Subparsers(Protocol):
    """What `add_parser(subparsers)` gets: argparse's subparsers action."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...


def add_subcommands(parser: argparse.ArgumentParser, dest: str) -> Subparsers:
    """Required subcommands of `parser`, named in `args.<dest>`. No abbreviations: `--format`
    must not silently mean `--formats`."""
    return parser.add_subparsers(
        dest=dest, required=True, parser_class=functools.partial(Parser, allow_abbrev=False)
    )


def int_list(text: str, what: str) -> list[int]:
    """`1,8,32` as positive integers; `what` names the flag in the error."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"{what} must be comma-separated integers, got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise UserError(f"{what} must be positive integers, got {text!r}")
    return values


def csv_list(text: str | None) -> list[str] | None:
    """`a, b,` as ['a', 'b']; None where the flag was not given (or empty)."""
    return [v.strip() for v in text.split(",") if v.strip()] if text else None


def devices(args: argparse.Namespace) -> list[str]:
    """`--device`, each normalized (`gpu` -> `cuda`); cpu when not given."""
    return [str(parse_device(d)) for d in csv_list(args.device) or ["cpu"]]


def threads(args: argparse.Namespace) -> list[int | None]:
    """`--threads`, or every core this process may use. Set explicitly for every runtime,
    so that runtimes with a 1-thread default (LiteRT) are not compared unfairly."""
    if args.threads:
        return list(int_list(args.threads, "--threads"))
    return [len(os.sched_getaffinity(0))]


def profile(args: argparse.Namespace) -> str:
    """The profile `--profile` or `--quick` names (full when neither)."""
    if args.quick and args.profile not in (None, "quick"):
        raise UserError(f"--quick is --profile quick: it cannot go with --profile {args.profile}")
    return "quick" if args.quick else (args.profile or "full")


def stop_rule(args: argparse.Namespace) -> StopRule:
    """The profile's timing rule, with the fields given on the command line."""
    given = {
        "min_iters": args.min_iters,
        "min_time_s": args.min_time,
        "max_time_s": args.max_time,
        "warmup_iters": args.warmup,
    }
    return replace(
        get_profile(profile(args)).rule, **{k: v for k, v in given.items() if v is not None}
    )


def runtime_settings(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Runtime settings from the command line, by runtime (each runtime checks its own)."""
    settings: dict[str, dict[str, Any]] = {}
    ort = settings.setdefault("onnxruntime", {})
    if args.tensorrt:
        ort["tensorrt"] = True
    if args.graph_optimization:
        ort["graph_optimization_level"] = args.graph_optimization
    if args.no_spinning:
        ort["allow_spinning"] = False
    for item in args.setting:
        runtime, name, value = parse_setting(item)
        settings.setdefault(runtime, {})[name] = value
    return {runtime: values for runtime, values in settings.items() if values}


def parse_setting(item: str) -> tuple[str, str, Any]:
    """`RUNTIME.NAME=VALUE`; the value read as JSON where it parses (true, 3, null, "x"),
    else as text."""
    key, sep, text = item.partition("=")
    runtime, dot, name = key.partition(".")
    if not sep or not dot or not runtime or not name:
        raise UserError(
            f"--setting must look like RUNTIME.NAME=VALUE (e.g. onnxruntime.allow_spinning="
            f"false), got {item!r}"
        )
    try:
        value = json.loads(text)
    except ValueError:
        value = text
    return runtime.strip(), name.strip(), value
