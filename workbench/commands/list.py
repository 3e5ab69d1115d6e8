"""`workbench list [tasks|runtimes|passes|endpoints]`: the registries, read from their
tables and entry points."""

from __future__ import annotations

import argparse

from workbench.commands.args import Subparsers
from workbench.devices import parse_device
from workbench.options import Options
from workbench.registry import registries


def add_parser(subparsers: Subparsers) -> None:
    listing = subparsers.add_parser(
        "list", help="list the registered tasks, runtimes, passes and task endpoints"
    )
    listing.add_argument("what", nargs="?", choices=tuple(registries()), help="one registry only")


def run(args: argparse.Namespace) -> int:
    """A runtime's or pass's options are shown only for one registry (that imports its
    modules, not frameworks)."""
    chosen = {k: v for k, v in registries().items() if args.what in (None, k)}
    for noun, registry in chosen.items():
        print(f"{noun}:")
        for name in registry.names():
            if args.what not in ("runtimes", "passes"):
                print(f"  {name}")
                continue
            cls = registry.get(name)
            reason = cls().unavailable_reason(parse_device("cpu")) if noun == "runtimes" else None
            print(f"  {name}  unavailable: {reason}" if reason else f"  {name}")
            _print_options(cls.Settings if noun == "runtimes" else cls.Params)
    return 0


def _print_options(options: type[Options]) -> None:
    """One option a line under its runtime or pass: name, type, default, description."""
    fields = options.describe_fields()
    for field in fields:
        print(f"      {field.text()}")
    if not fields:
        print("      no options")
