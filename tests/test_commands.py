"""The command modules' shape: `--rerun`/`--resume` refuse exactly the flags recorded as
saying what a run measures, command modules share code only through the shared modules,
and the light commands start without the heavy frameworks."""

from __future__ import annotations

import argparse
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.cli import main
from workbench.commands.bench.flags import SweepFlags

REPO = Path(__file__).resolve().parents[1]
COMMANDS = REPO / "workbench" / "commands"
SHARED = {"workbench.commands.args", "workbench.commands.output", "workbench.commands.progress"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rerun", "r1", "--setting", "x.y=1", "--repeats", "3"], "drop --repeats, --setting"),
        (["--rerun", "r1", "--no-end-to-end", "--quick"], "drop --no-end-to-end, --quick"),
        (["x.onnx", "--rerun", "r1"], "drop MODEL_FILE"),
        (["--rerun", "r1", "--scenario", "offline"], "drop --scenario"),
        (["--resume", "r1", "--cluster", "tcp://h:1", "--hosts", "a"], "drop --hosts"),
        # not what a run measures: the stored run is looked up
        (["--rerun", "r1", "--target-qps", "5", "--max-batch", "4"], "no run 'r1'"),
        (["--resume", "r1", "--cluster", "tcp://h:1"], "was not made with --cluster"),
    ],
)
def test_rerun_and_resume_refuse_the_flags_that_say_what_to_measure(
    argv, message, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("WORKBENCH_HOME", str(tmp_path))
    assert main(["bench", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


def test_a_flag_recorded_as_a_sweep_flag_is_refused_with_no_list_to_edit():
    parser = argparse.ArgumentParser()
    sweep = SweepFlags()
    add = sweep.on(parser)
    add("--new-flag", type=int, default=4)
    add("--switch", action="store_true")
    parser.add_argument("--free")
    assert sweep.given(parser.parse_args(["--free", "x", "--new-flag", "4"])) == []
    assert sweep.given(parser.parse_args(["--switch", "--new-flag", "5"])) == [
        "--new-flag",
        "--switch",
    ]


def _command_imports(path: Path) -> set[str]:
    """The workbench.commands modules `path` imports."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            package = (REPO / node.module.replace(".", "/")).is_dir()
            names |= {f"{node.module}.{a.name}" for a in node.names} if package else {node.module}
    return {n for n in names if n.startswith("workbench.commands.")}


def test_a_command_module_imports_no_other_command_module():
    """Commands share code through args, output and progress only; bench's parts import
    each other, and nothing outside bench imports them."""
    for path in COMMANDS.rglob("*.py"):
        in_bench = path.parent.name == "bench"
        for name in _command_imports(path):
            ok = name in SHARED or (in_bench and name.startswith("workbench.commands.bench."))
            assert ok, f"{path.relative_to(REPO)} imports {name}"


def test_light_commands_start_without_the_frameworks():
    code = """
import contextlib, io, json, sys
from workbench.cli import main
for argv in (["list"], ["list", "runtimes"], ["env"]):
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(argv) == 0
with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
    main(["--help"])
heavy = ("torch", "tensorflow", "keras", "onnxruntime", "onnx", "pandas", "prometheus_client")
print(json.dumps(sorted(m for m in heavy if m in sys.modules)))
"""
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout.splitlines()[-1]) == []


def test_a_bench_flag_classified_neither_way_stops_the_parser():
    """A new flag added with plain `add_argument` cannot slip past --rerun/--resume."""
    parser = argparse.ArgumentParser()
    sweep = SweepFlags()
    sweep.on(parser)("--measured")
    sweep.off(parser)("--where-to-print")
    sweep.check_complete(parser)  # every flag classified: nothing to say
    parser.add_argument("--sneaky")
    with pytest.raises(RuntimeError, match="--sneaky"):
        sweep.check_complete(parser)
