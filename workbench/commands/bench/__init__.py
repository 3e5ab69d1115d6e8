"""`workbench bench`, in parts with one job each: `command` (the parser and the dispatch),
`flags` (the general flags, and which say what a run measures), `model_file`, `task`,
`rerun` (--rerun and --resume), `scenario` (LoadGen) and `fleet` (--cluster)."""

from workbench.commands.bench.command import add_parser, run

__all__ = ["add_parser", "run"]
