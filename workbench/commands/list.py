"""`workbench list [tasks|runtimes|passes]`: the registries, read from their tables and
entry points."""

from __future__ import annotations

import argparse

from workbench.commands.args import Subparsers
from workbench.devices import parse_device
from workbench.registry import registries


def add_parser(subparsers: Subparsers) -> None:
    listing = subparsers.add_parser("list", help="list the registered tasks, runtimes and passes")
    listing.add_argument(
        "what", nargs="?", choices=("tasks", "runtimes", "passes"), help="one registry only"
    )


def run(args: argparse.Namespace) -> int:
    """A runtime's or pass's options are shown only for one registry (that imports its
    modules, not frameworks)."""
    chosen = {k: v for k, v in registries().items() if args.what in (None, k)}
    for noun, registry in chosen.items():
        print(f"{noun}:")
        for name in registry.names():
            detail = ""
            if args.what in ("runtimes", "passes"):
                cls = registry.get(name)
                options = cls.Settings if noun == "runtimes" else cls.Params
                detail = f"  [{options.describe()}]"
            if args.what == "runtimes":
                reason = cls().unavailable_reason(parse_device("cpu"))
                detail += f"  unavailable: {reason}" if reason else ""
            print(f"  {name}{detail}")
    return 0
