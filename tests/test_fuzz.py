"""A short fuzzing run (seconds): the option parsers, the command line, input plans and
format detection take random and mutated input and either work or give a one-line
UserError; mutated ONNX files loaded by the runtime never crash or hang the loader.
The long run (>= 100,000 inputs, every format's loader) is `make fuzz`."""

from __future__ import annotations

import pytest

from tests.fuzz_targets import (
    build_seeds,
    fuzz_loader,
    hypothesis_targets,
    light_seeds,
    run_property,
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
