"""The `workbench` command: parse, call the package, print a table or JSON lines.

Bad input exits with code 2 and one line saying what is wrong and what to do.
"""

# The docstring above is the parser's description (`workbench --help`). Each command is a
# module of workbench.commands with `add_parser(subparsers)` and `run(args) -> int`.

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from types import ModuleType

from workbench.commands import (
    bench,
    cache,
    cluster,
    compare,
    env,
    export,
    model,
    notebooks,
    recommend,
    report,
    serve,
)
from workbench.commands import list as list_
from workbench.commands.args import Parser, add_subcommands
from workbench.errors import UserError
from workbench.logs import configure_logging

# In the order `workbench --help` lists them.
COMMANDS: dict[str, ModuleType] = {
    "env": env,
    "bench": bench,
    "cluster": cluster,
    "export": export,
    "cache": cache,
    "report": report,
    "recommend": recommend,
    "compare": compare,
    "notebooks": notebooks,
    "serve": serve,
    "list": list_,
    "model": model,
}


def build_parser() -> argparse.ArgumentParser:
    """The `workbench` parser with every command's subcommand."""
    # No abbreviations: `--format` must not silently mean `--formats`.
    parser = Parser(prog="workbench", description=__doc__, allow_abbrev=False)
    subparsers = add_subcommands(parser, "command")
    for command in COMMANDS.values():
        command.add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; its exit code (2: bad input, 130: interrupted, 141: closed pipe)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # What a person sees of the library's logs and progress is decided here, before any
    # command runs: info records and, on a terminal, progress bars, on stderr.
    configure_logging()
    try:
        args = build_parser().parse_args(argv)
        return COMMANDS[args.command].run(args)
    except UserError as exc:
        print(f"workbench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("workbench: interrupted; finished rows are kept in the run", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # stdout went to a closed pipe (e.g. `| head`): stop quietly, as shell tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
