"""The `workbench` command run as a user runs it: bad input gets one line and exit code 2,
good input gets result rows (JSON lines) that land in the result store."""

from __future__ import annotations

import json
import re
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.support.cli import FAST, run_cli
from tests.support.model_files import unnamed_dims_onnx
from workbench import devices, results

REQUIRED_JSON_KEYS = (
    "status",
    "error",
    "runtime",
    "device",
    "format",
    "precision",
    "batch_size",
    "threads",
    "latency_ms_p50",
    "latency_ms_p99",
    "latency_ms_mean",
    "throughput_items_per_s",
    "n_iterations",
)


# ---------------------------------------------------------------- model files


def _save(graph, path: Path) -> Path:
    import onnx
    from onnx import helper

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    from onnx import TensorProto, helper, numpy_helper

    root = tmp_path_factory.mktemp("cli-models")
    rng = np.random.default_rng(0)
    w = rng.standard_normal((16, 8)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    dense = _save(
        helper.make_graph(
            [
                helper.make_node("MatMul", ["x", "W"], ["xw"]),
                helper.make_node("Add", ["xw", "B"], ["y"]),
            ],
            "dense",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])],
            initializer=[numpy_helper.from_array(w, "W"), numpy_helper.from_array(b, "B")],
        ),
        root / "dense.onnx",
    )
    symbolic = _save(
        helper.make_graph(
            [helper.make_node("Relu", ["x"], ["y"])],
            "symbolic",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq"])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq"])],
        ),
        root / "symbolic.onnx",
    )
    strings = _save(
        helper.make_graph(
            [helper.make_node("Identity", ["text"], ["out"])],
            "strings",
            [helper.make_tensor_value_info("text", TensorProto.STRING, ["batch"])],
            [helper.make_tensor_value_info("out", TensorProto.STRING, ["batch"])],
        ),
        root / "strings.onnx",
    )
    data = dense.read_bytes()
    truncated = root / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    text = root / "notes.onnx"
    text.write_text("these are my notes, not a model\n" * 20)
    garbage_tflite = root / "garbage.tflite"
    garbage_tflite.write_bytes(bytes(range(256)) * 4)
    text_pt = root / "model.pt"
    text_pt.write_text("not a zip archive\n" * 10)
    empty = root / "empty.onnx"
    empty.write_bytes(b"")
    unknown_suffix = root / "model.bin"
    unknown_suffix.write_bytes(bytes(rng.integers(0, 256, 512, dtype=np.uint8)))
    not_saved_model = root / "some_dir"
    not_saved_model.mkdir()
    bad_saved_model = root / "bad_saved"
    bad_saved_model.mkdir()
    (bad_saved_model / "saved_model.pb").write_bytes(b"\xff\xfe not a protobuf")
    checkpoint = root / "weights.pt"
    with zipfile.ZipFile(checkpoint, "w") as archive:
        archive.writestr("weights/data.pkl", b"\x80\x04N.")
    other_zip = root / "photos.zip"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("a.txt", "hello")
    np.save(root / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.save(root / "flat.npy", np.zeros(3, dtype=np.float32))
    np.save(root / "words.npy", np.full((2, 16), "w"))
    np.save(root / "narrow.npy", np.zeros((3, 5), dtype=np.float32))
    unnamed = unnamed_dims_onnx(root / "unnamed.onnx")
    return {
        "dense": dense,
        "symbolic": symbolic,
        "strings": strings,
        "truncated": truncated,
        "text": text,
        "garbage_tflite": garbage_tflite,
        "text_pt": text_pt,
        "empty": empty,
        "unknown_suffix": unknown_suffix,
        "not_saved_model": not_saved_model,
        "bad_saved_model": bad_saved_model,
        "checkpoint": checkpoint,
        "other_zip": other_zip,
        "unnamed": unnamed,
        "data": root,
    }


# ---------------------------------------------------------------- bad input

# (case id, argv with {name} placeholders for model files, words the message must hold)
BAD_INPUT = [
    ("missing-file", ["bench", "{root}/nope.onnx"], ["does not exist"]),
    ("truncated-onnx", ["bench", "{truncated}"], ["not a valid ONNX model"]),
    ("text-renamed-onnx", ["bench", "{text}"], ["not a valid ONNX model"]),
    ("empty-file", ["bench", "{empty}"], ["empty"]),
    ("garbage-tflite", ["bench", "{garbage_tflite}"], ["not a TFLite"]),
    ("text-renamed-pt", ["bench", "{text_pt}"], ["torchscript"]),
    ("unknown-suffix", ["bench", "{unknown_suffix}"], ["cannot tell the format"]),
    ("dir-not-saved-model", ["bench", "{not_saved_model}"], ["saved_model.pb"]),
    ("unknown-task", ["bench", "--task", "nope"], ["unknown task", "tabular"]),
    ("unknown-runtime", ["bench", "{dense}", "--runtime", "nope"], ["unknown runtime", "nope"]),
    ("runtime-wrong-format", ["bench", "{dense}", "--runtime", "litert"], ["cannot run format"]),
    ("unknown-device", ["bench", "{dense}", "--device", "tpu"], ["unknown device", "tpu"]),
    ("batch-zero", ["bench", "{dense}", "--batch", "0"], ["--batch", "positive"]),
    ("batch-negative", ["bench", "{dense}", "--batch", "-1"], ["--batch", "positive"]),
    ("batch-not-int", ["bench", "{dense}", "--batch", "a"], ["--batch", "integers"]),
    ("batch-one-bad", ["bench", "{dense}", "--batch", "1,0,8"], ["--batch", "positive"]),
    ("threads-zero", ["bench", "{dense}", "--threads", "0"], ["--threads"]),
    ("symbolic-dim-unset", ["bench", "{symbolic}"], ["seq", "--dim seq="]),
    ("dim-malformed", ["bench", "{symbolic}", "--dim", "seq"], ["NAME=VALUE"]),
    ("dim-zero", ["bench", "{symbolic}", "--dim", "seq=0"], ["positive"]),
    # A user's model whose input is a string tensor: inputs cannot be generated from its
    # signature, so it is refused up front instead of failing somewhere in the run.
    ("string-input", ["bench", "{strings}"], ["dtype", "string"]),
    ("min-time-negative", ["bench", "{dense}", "--min-time", "-1"], ["min_time"]),
    ("max-time-nan", ["bench", "{dense}", "--max-time", "nan"], ["max_time"]),
    ("max-below-min", ["bench", "{dense}", "--min-time", "5", "--max-time", "1"], ["max_time"]),
    ("min-iters-negative", ["bench", "{dense}", "--min-iters", "-3"], ["min_iters"]),
    ("file-and-task", ["bench", "{dense}", "--task", "tabular"], ["either"]),
    ("nothing-to-bench", ["bench"], ["either"]),
    ("unknown-command", ["frobnicate"], ["invalid choice"]),
    ("unknown-option", ["bench", "{dense}", "--speed", "11"], ["unrecognized"]),
    ("unknown-format", ["bench", "--task", "tabular", "--formats", "gguf"], ["unknown format"]),
    ("unknown-model", ["bench", "--task", "tabular", "--model", "huge"], ["no model", "huge"]),
    ("quick-and-profile", ["bench", "{dense}", "--quick", "--profile", "full"], ["--quick"]),
    ("unknown-profile", ["bench", "{dense}", "--profile", "huge"], ["invalid choice"]),
    ("setting-malformed", ["bench", "{dense}", "--setting", "spin"], ["RUNTIME.NAME=VALUE"]),
    (
        "setting-unknown",
        ["bench", "{dense}", "--setting", "onnxruntime.speed=11"],
        ["no setting 'speed'", "allow_spinning"],
    ),
    (
        "setting-ill-typed",
        ["bench", "{dense}", "--setting", "onnxruntime.allow_spinning=maybe"],
        ["allow_spinning must be true or false"],
    ),
    (
        "setting-other-runtime",
        ["bench", "{dense}", "--setting", "litert.xnnpack=false"],
        ["litert", "runs on onnxruntime"],
    ),
    ("rerun-unknown", ["bench", "--rerun", "nope"], ["no run 'nope'"]),
    ("rerun-and-file", ["bench", "{dense}", "--rerun", "x"], ["--rerun"]),
    ("old-format-flag", ["bench", "{dense}", "--format", "json"], ["unrecognized"]),
    # model files recognised by content, and what is refused
    ("bad-saved-model", ["bench", "{bad_saved_model}"], ["not a SavedModel protobuf"]),
    ("torch-checkpoint", ["bench", "{checkpoint}"], ["torch.save checkpoint", "not loaded"]),
    ("zip-not-a-model", ["bench", "{other_zip}"], ["zip archive but not"]),
    ("control-chars-in-path", ["bench", "{root}/a\nb\r.onnx"], ["does not exist", "\\n"]),
    ("control-chars-in-batch", ["bench", "{dense}", "--batch", "1\n2"], ["--batch", "\\n"]),
    # model-file inputs: --shape, --batch-axis, --int-range, --input(s)
    ("unnamed-dims-unset", ["bench", "{unnamed}"], ["axis 2 (unnamed)", "--shape image="]),
    ("shape-malformed", ["bench", "{dense}", "--shape", "x"], ["--shape", "NAME=VALUE"]),
    ("shape-zero-axis", ["bench", "{dense}", "--shape", "x=Bx0"], ["positive integer or B"]),
    ("shape-two-batch-axes", ["bench", "{dense}", "--shape", "x=BxB"], ["only one axis"]),
    ("shape-bad-dtype", ["bench", "{dense}", "--shape", "x=Bx16:complex64"], ["complex64"]),
    ("shape-unknown-input", ["bench", "{dense}", "--shape", "nope=Bx16"], ["no input 'nope'"]),
    ("shape-too-large", ["bench", "{dense}", "--shape", "x=Bx2000000000"], ["GiB"]),
    ("shape-with-task", ["bench", "--task", "tabular", "--shape", "x=B"], ["MODEL_FILE"]),
    ("batch-axis-malformed", ["bench", "{dense}", "--batch-axis", "x=first"], ["AXIS"]),
    ("batch-axis-too-high", ["bench", "{dense}", "--batch-axis", "x=5"], ["has 2 axes"]),
    ("int-range-malformed", ["bench", "{dense}", "--int-range", "x=5"], ["LOW:HIGH"]),
    ("int-range-empty", ["bench", "{dense}", "--int-range", "x=5:5"], ["below HIGH"]),
    ("int-range-on-float", ["bench", "{dense}", "--int-range", "x=0:5"], ["not an integer"]),
    ("input-missing-file", ["bench", "{dense}", "--input", "x={root}/nope.npy"], ["no file"]),
    ("input-pickled-npy", ["bench", "{dense}", "--input", "x={data}/objects.npy"], ["unpickle"]),
    ("input-wrong-ndim", ["bench", "{dense}", "--input", "x={data}/flat.npy"], ["takes 2 axes"]),
    ("input-wrong-dtype", ["bench", "{dense}", "--input", "x={data}/words.npy"], ["<U1"]),
    (
        "input-fixed-axis",
        ["bench", "{dense}", "--input", "x={data}/narrow.npy"],
        ["fixes it at 16"],
    ),
    ("inputs-not-npz", ["bench", "{dense}", "--inputs", "{data}/flat.npy"], ["not a .npz"]),
    ("inputs-missing", ["bench", "{dense}", "--inputs", "{root}/nope.npz"], ["no file"]),
    # your own model (#23): a file is timed as it is; sources that cannot be converted
    (
        "file-precision-not-fp32",
        ["bench", "{dense}", "--precisions", "int8-dynamic"],
        ["as it is", "model init"],
    ),
    ("model-init-pickle", ["model", "init", "{checkpoint}"], ["torch.save", "factory"]),
    ("model-init-no-factory-file", ["model", "init", "{root}/nope.py:make"], ["no file"]),
    ("model-init-dir-no-config", ["model", "init", "{not_saved_model}"], ["config.json"]),
    ("model-check-missing", ["model", "check", "{root}/nope.yaml"], ["model init"]),
    ("export-neither", ["export"], ["model.yaml", "--task"]),
    (
        "task-calibration-random",
        ["bench", "--task", "tabular", "--calibration", "random"],
        ["model.yaml", "own calibration"],
    ),
    (
        "task-runtime-runs-no-format",
        ["bench", "--task", "tabular", "--formats", "tflite", "--runtime", "onnxruntime-c"],
        ["--runtime onnxruntime-c", "tflite", "--formats"],
    ),
]


@pytest.mark.parametrize(
    ("argv", "words"), [(a, w) for _, a, w in BAD_INPUT], ids=[c for c, _, _ in BAD_INPUT]
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, models, argv, words):
    names = {k: str(v) for k, v in models.items()}
    args = [a.format(root=tmp_path, **names) for a in argv]
    if args[0] == "bench" and "--rerun" not in args:  # short measurements, placed first so
        # the case's own flags win (a rerun takes its measurement settings from the stored run)
        args = ["bench", *FAST, *args[1:]]
    proc = run_cli(args, tmp_path)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("workbench: error:"), lines[0]
    assert len(lines[0]) > len("workbench: error: ") + 10
    for word in words:
        assert word.lower() in lines[0].lower(), f"{word!r} not in {lines[0]!r}"
    assert proc.stdout.strip() == ""


# ---------------------------------------------------------------- good input


def _json_rows(proc: subprocess.CompletedProcess[str]) -> list[dict]:
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def test_bench_json_rows_and_store(tmp_path, models):
    home = tmp_path / "ws"
    proc = run_cli(
        ["bench", str(models["dense"]), "--batch", "1,4", *FAST, "--output", "json"], tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    rows = _json_rows(proc)
    assert [r["batch_size"] for r in rows] == [1, 4]
    for row in rows:
        missing = [k for k in REQUIRED_JSON_KEYS if k not in row]
        assert not missing, missing
        assert row["status"] == "ok", row["error"]
        assert row["error"] is None
        assert row["runtime"] == "onnxruntime"
        assert row["device"] == "cpu"
        assert row["format"] == "onnx"
        assert row["n_iterations"] >= 20
        assert row["latency_ms_p50"] > 0
        assert row["latency_ms_mean"] > 0
        assert row["throughput_items_per_s"] > 0
        if row["latency_ms_p99"] is not None:
            assert row["latency_ms_p99"] >= row["latency_ms_p50"]
        assert "latencies_ms" not in row  # raw latencies stay in the store, not on stdout
    assert rows[1]["input_shape"] == "4x16"

    # The rows are in the store under WORKBENCH_HOME, with their raw latencies.
    runs = home / "runs"
    assert runs.is_dir()
    frame = results.load(runs)
    assert sorted(frame["row_id"]) == sorted(r["row_id"] for r in rows)
    assert set(frame["status"]) == {"ok"}
    assert all(
        len(lat) == n for lat, n in zip(frame["latencies_ms"], frame["n_iterations"], strict=True)
    )
    manifests = results.load_manifests(runs)
    assert [m["status"] for m in manifests] == ["ok"]


def test_bench_table_is_the_default(tmp_path, models):
    proc = run_cli(["bench", str(models["dense"]), *FAST], tmp_path)
    assert proc.returncode == 0, proc.stderr
    header, *body = proc.stdout.splitlines()
    assert "status" in header and "p50 ms" in header
    assert len(body) == 1 and body[0].startswith("ok")


def test_bench_symbolic_dim_set(tmp_path, models):
    proc = run_cli(
        ["bench", str(models["symbolic"]), "--dim", "seq=16", "--batch", "2", *FAST]
        + ["--output", "json"],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    (row,) = _json_rows(proc)
    assert row["status"] == "ok", row["error"]
    assert row["input_shape"] == "2x16"


def test_bench_cuda_without_gpu_is_unavailable(tmp_path, models):
    if devices.nvidia_gpus():
        pytest.skip("this host has a GPU")
    proc = run_cli(
        ["bench", str(models["dense"]), "--device", "cuda", "--batch", "1,8", *FAST]
        + ["--output", "json"],
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    rows = _json_rows(proc)
    assert [r["batch_size"] for r in rows] == [1, 8]
    for row in rows:
        assert row["status"] == "unavailable"
        assert "no GPU on this host" in row["error"]
        assert row["device"].startswith("cuda")
        assert row["latency_ms_p50"] is None  # nothing was measured under a cuda name
    frame = results.load(tmp_path / "ws" / "runs")
    assert set(frame["status"]) == {"unavailable"}


def _cpu_has_avx2() -> bool:
    try:
        return " avx2" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


def test_env(tmp_path):
    proc = run_cli(["env"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "fingerprint id" in proc.stdout
    assert "cpu flags" in proc.stdout
    if _cpu_has_avx2():
        assert "avx2" in proc.stdout


def test_bench_csv_output_and_readable_numbers(tmp_path, models):
    import csv
    import io

    proc = run_cli(
        ["bench", str(models["dense"]), "--batch", "1,4", *FAST, "--output", "csv"], tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert [r["batch_size"] for r in rows] == ["1", "4"]
    assert all(r["status"] == "ok" for r in rows) and "latencies_ms" not in rows[0]
    # The table writes counts as integers (20,000, never 2e+04) and one line per row.
    proc = run_cli(
        ["bench", str(models["dense"]), "--min-iters", "20000", "--min-time", "0"], tmp_path
    )
    header, *body = proc.stdout.splitlines()
    assert len(body) == 1 and "e+0" not in body[0]
    counts = [int(t.replace(",", "")) for t in re.findall(r"\b\d{1,3}(?:,\d{3})+\b", body[0])]
    assert " n " in f" {header} " and any(c >= 20_000 for c in counts)


def test_rerun_repeats_a_model_file_run(tmp_path, models):
    first = _json_rows(
        run_cli(
            ["bench", str(models["dense"]), "--batch", "1,4", *FAST, "--output", "json"], tmp_path
        )
    )
    run_id = first[0]["run_id"]
    again = run_cli(["bench", "--rerun", run_id, "--output", "json"], tmp_path)
    assert again.returncode == 0, again.stderr
    rows = _json_rows(again)
    assert rows[0]["run_id"] != run_id
    assert [(r["batch_size"], r["status"], r["n_iterations"] >= 20) for r in rows] == [
        (1, "ok", True),
        (4, "ok", True),
    ]
    manifest = next(
        m
        for m in results.load_manifests(tmp_path / "ws" / "runs")
        if m["run_id"] == rows[0]["run_id"]
    )
    assert manifest["config"]["command"] == f"bench --rerun {run_id}"
