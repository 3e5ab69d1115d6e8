"""Typed options: declared once as dataclasses, checked with one-line errors that list the
valid options; the CLI's runtime settings reach the right runtime."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pytest

from exporters.base import find_pass
from tests.support.childproc import run_child
from workbench.commands.args import parse_setting
from workbench.errors import UserError
from workbench.harness.runner import BenchConfig
from workbench.options import OptionField, Options, option
from workbench.registry import get_runtime
from workbench.sweep import TaskSweep


@dataclass(frozen=True)
class Sample(Options):
    level: Literal["low", "high"] = "low"
    count: int = 3
    scale: float = 1.0
    flag: bool = False
    label: str | None = None


def test_defaults_come_from_the_dataclass() -> None:
    assert Sample.parse({}) == Sample()
    assert Sample.parse(None).to_dict() == {
        "level": "low",
        "count": 3,
        "scale": 1.0,
        "flag": False,
        "label": None,
    }
    assert Sample.parse({"count": 5}).changed() == {"count": 5}


def test_an_int_is_accepted_as_a_float_but_not_the_other_way() -> None:
    assert Sample.parse({"scale": 2}).scale == 2.0
    with pytest.raises(UserError, match="count must be an integer, got 2.5"):
        Sample.parse({"count": 2.5})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"levle": "low"}, "thing has no option 'levle': it takes level"),
        ({"a": 1, "b": 2}, "thing has no options 'a', 'b'"),
        ({"level": "medium"}, "level must be one of low, high, got 'medium'"),
        ({"flag": 1}, "flag must be true or false, got 1"),
        ({"count": True}, "count must be an integer, got True"),
        ({"label": 3}, "label must be a string or null"),
    ],
)
def test_unknown_or_ill_typed_options_fail_in_one_line(values: dict, message: str) -> None:
    with pytest.raises(UserError, match=message) as info:
        Sample.parse(values, owner="thing")
    assert "\n" not in str(info.value)
    assert "count (an integer; default 3)" in str(info.value)  # the valid ones are listed


def test_pass_parameters_are_typed_and_listed() -> None:
    onnx = find_pass("torch", "onnx", "fp32")
    assert onnx.check_params({}).to_dict() == {"opset": 18, "dynamo": "auto"}
    assert onnx.check_params({"dynamo": False}).dynamo is False
    with pytest.raises(UserError, match="pass 'torch_onnx': parameter opset must be an integer"):
        onnx.check_params({"opset": "18"})
    with pytest.raises(UserError, match="dynamo must be true or false or one of auto"):
        onnx.check_params({"dynamo": "yes"})


def test_runtime_settings_are_checked_when_a_config_is_made() -> None:
    assert get_runtime("onnxruntime").parse_settings({"tensorrt": True}).tensorrt is True
    with pytest.raises(UserError, match="runtime 'onnxruntime' has no setting 'xnnpack'"):
        BenchConfig(runtime="onnxruntime", format="onnx", runtime_settings={"xnnpack": False})
    with pytest.raises(UserError, match="runtime 'litert' has no setting 'tensorrt'"):
        TaskSweep(task="tabular", runtime_settings={"litert": {"tensorrt": True}})


def test_cli_settings_are_read_as_json_values() -> None:
    assert parse_setting("onnxruntime.allow_spinning=false") == (
        "onnxruntime",
        "allow_spinning",
        False,
    )
    assert parse_setting("tensorflow.signature=serving_default") == (
        "tensorflow",
        "signature",
        "serving_default",
    )
    assert parse_setting("x.n=3") == ("x", "n", 3)
    with pytest.raises(UserError, match="RUNTIME.NAME=VALUE"):
        parse_setting("allow_spinning=false")


def test_an_options_class_checks_itself_when_built_directly() -> None:
    with pytest.raises(UserError, match="level must be one of low, high, got 'medium'"):
        Sample(level="medium")  # type: ignore[arg-type]
    assert Sample(scale=2).scale == 2.0 and isinstance(Sample(scale=2).scale, float)


# ---------------------------------------------------------------- descriptions


@dataclass(frozen=True)
class Described(Options):
    size: int = option(4, "how many items go in one batch")
    mode: Literal["fast", "exact"] = option("fast", "fast rounds, exact does not")


def test_each_option_carries_its_description() -> None:
    assert Described.describe_fields() == [
        OptionField("size", "an integer", 4, "how many items go in one batch"),
        OptionField("mode", "one of fast, exact", "fast", "fast rounds, exact does not"),
    ]
    assert Sample.describe_fields()[1] == OptionField("count", "an integer", 3, "")
    assert Described.describe() == (
        "size (an integer; default 4): how many items go in one batch; "
        "mode (one of fast, exact; default 'fast'): fast rounds, exact does not"
    )


def test_the_unknown_option_error_says_what_each_option_does() -> None:
    with pytest.raises(UserError) as info:
        Described.parse({"sise": 3}, owner="thing")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("thing has no option 'sise': it takes size (an integer; default 4)")
    assert "how many items go in one batch" in message and "fast rounds, exact does not" in message
    with pytest.raises(UserError, match="opset .*: the ONNX opset the exported graph targets"):
        find_pass("torch", "onnx", "fp32").check_params({"opsett": 17})


def test_every_builtin_pass_and_runtime_option_has_a_description() -> None:
    """In a fresh interpreter, so only the built-in tables count (not a test's plugin)."""
    out = run_child(
        """
        import json
        from workbench.registry import PASSES, RUNTIMES
        fields = {}
        for registry, attr in ((RUNTIMES, "Settings"), (PASSES, "Params")):
            for name, cls in registry.all().items():
                for f in getattr(cls, attr).describe_fields():
                    fields[f"{registry.kind} {name}: {f.name}"] = f.description
        print(json.dumps(fields))
        """
    )
    assert "pass torch_onnx: opset" in out and "runtime torch: autocast" in out
    undescribed = sorted(k for k, text in out.items() if not text.strip())
    assert undescribed == []
    assert all("\n" not in text for text in out.values())  # one line each
