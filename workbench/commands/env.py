"""`workbench env`: the environment fingerprint that every stored run records."""

from __future__ import annotations

import argparse

from workbench.commands.args import Subparsers
from workbench.env import fingerprint, fingerprint_id, format_fingerprint


def add_parser(subparsers: Subparsers) -> None:
    subparsers.add_parser("env", help="print the environment fingerprint")


def run(args: argparse.Namespace) -> int:
    fp = fingerprint()
    print(format_fingerprint(fp))
    print(f"fingerprint id: {fingerprint_id(fp)}")
    return 0
