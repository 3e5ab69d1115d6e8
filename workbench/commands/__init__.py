"""The `workbench` commands, one module each.

A command module has `add_parser(subparsers)`, which adds its subcommand and flags, and
`run(args) -> int`, which does the work and returns the exit code; `workbench/cli.py`
lists the modules in the order `workbench --help` shows them. `bench` is a package of
parts with one job each (flags, a model file, a task sweep, rerun/resume, scenarios,
fleet). What commands share lives in `args` (parser, argument types, readers of shared
flags), `output` (the `--output` flag and the rows it prints) and `progress` (the
progress bar); a command module imports no other command module.

A new command costs one module here, one line in `workbench/cli.py` and one in the
`commands` independence contract of `pyproject.toml`.
"""
