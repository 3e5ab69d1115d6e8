"""`workbench cache ls|verify|gc`: the exported artifacts and their state (see
exporters.cache)."""

from __future__ import annotations

import argparse
import sys

from exporters import cache
from workbench.commands.args import Subparsers
from workbench.commands.output import add_output, emit

CACHE_COLUMNS = (
    ("entry", "entry", "text"),
    ("state", "state", "text"),
    ("format", "format", "text"),
    ("precision", "precision", "text"),
    ("size_bytes", "size MB", "mb"),
    ("peak_rss_bytes", "export peak RSS MB", "mb"),
    ("parity_pass", "parity", "bool"),
    ("reason", "reason", "text"),
)
_SUBCOMMANDS = (
    ("ls", "list every artifact with its state (ok, failed, stale, corrupt, no-manifest)"),
    ("verify", "check every artifact's files against its manifest's sha256 (exit 1: bad)"),
    ("gc", "remove the artifacts that can never be served: unfinished, corrupt, stale"),
)


def add_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "cache", help="list, verify (sha256) or prune the exported artifacts"
    )
    cache_sub = parser.add_subparsers(dest="cache_command", required=True)
    for name, text in _SUBCOMMANDS:
        cmd = cache_sub.add_parser(name, help=text)
        add_output(cmd)
        if name == "gc":
            cmd.add_argument("--dry-run", action="store_true", help="list, remove nothing")
            cmd.add_argument(
                "--keep-failed", action="store_true", help="keep the manifests of failed exports"
            )


def run(args: argparse.Namespace) -> int:
    """Exit 1 when `verify` finds a corrupt artifact or one without a manifest."""
    from workbench.columns import Column  # lazy: pandas

    if args.cache_command == "gc":
        found = cache.gc(dry_run=args.dry_run, keep_failed=args.keep_failed)
    else:
        hashes = args.cache_command == "verify"
        found = [cache.check(e, hashes=hashes) for e in cache.entries()]
    rows = [e.row() for e in found]
    emit(rows, tuple(Column(*c) for c in CACHE_COLUMNS), args.output)
    if args.cache_command == "gc":
        verb = "would remove" if args.dry_run else "removed"
        print(f"{verb} {len(rows)} artifact(s)", file=sys.stderr)
    bad = [e for e in found if e.state in ("corrupt", "no-manifest")]
    return 1 if args.cache_command == "verify" and bad else 0
