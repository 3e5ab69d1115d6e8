"""A short fuzzing run (seconds): the option parsers, the command line, input plans and
format detection take random and mutated input and either work or give a one-line
UserError; mutated ONNX files loaded by the runtime never crash or hang the loader.
The long run (>= 100,000 inputs, every format's loader) is `make fuzz`."""

from __future__ import annotations

import pytest

from tests.support.cli import FAST, run_cli
from tests.support.fuzz_targets import (
    build_seeds,
    fuzz_loader,
    hypothesis_targets,
    light_seeds,
    run_property,
    write_mutant,
)

pytest.importorskip("hypothesis")

EXAMPLES = {"option parsers": 400, "command line": 150, "input plans": 200, "format detection": 200}


@pytest.fixture(scope="module")
def targets(tmp_path_factory):
    root = tmp_path_factory.mktemp("fuzz")
    return hypothesis_targets(light_seeds(root / "seeds"), root)


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_fuzz_target(targets, name):
    strategy, prop = targets[name]
    assert run_property(strategy, prop, EXAMPLES[name]) >= EXAMPLES[name] // 2


def test_mutated_onnx_files_never_crash_the_loader(tmp_path):
    seeds = build_seeds(tmp_path / "seeds", ("onnx",))
    result = fuzz_loader("onnx", seeds["onnx"], 60, tmp_path / "work", stall_s=30)
    assert result["crashes"] == 0 and result["hangs"] == 0, result
    assert result["ok"] + result["error"] == 60 and result["ok"] > 0 and result["error"] > 0


def test_mutated_files_through_the_cli_give_rows_or_one_line(tmp_path):
    import json
    import random

    seeds = light_seeds(tmp_path / "seeds")
    rng = random.Random(7)
    outcomes = []
    for i, fmt in enumerate(("onnx", "onnx", "onnx", "tflite")):
        mutant = write_mutant(fmt, seeds[fmt], rng, tmp_path / f"m{i}{seeds[fmt].suffix}")
        proc = run_cli(["bench", str(mutant), *FAST, "--batch", "1", "--dim", "seq=2", "--output", "json"], tmp_path)  # fmt: skip
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and "it/s" not in ln]
        assert proc.returncode in (0, 2), proc.stderr[-2000:]
        if proc.returncode == 2:
            assert len(lines) == 1 and lines[0].startswith("workbench: error:"), proc.stderr
        else:
            rows = [json.loads(ln) for ln in proc.stdout.splitlines() if ln.startswith("{")]
            assert rows and all(r["status"] in ("ok", "failed") for r in rows)
            assert all(r["error"] for r in rows if r["status"] == "failed")
        outcomes.append(proc.returncode)
    assert 2 in outcomes
