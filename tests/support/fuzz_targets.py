"""Fuzz targets for the workbench's parsers and model-file loaders, shared by the short
run in the test suite (tests/test_fuzz.py) and the long one (`make fuzz`, scripts/fuzz.py).

The contract under test: any input either works or raises `UserError` with a one-line
message (the CLI prints it and exits with code 2); nothing else escapes, nothing hangs.
Model loaders run native code (ONNX Runtime, LiteRT, TorchScript, TensorFlow) that may
crash outright on a mutated file; they run in a child process here, as in the CLI's
benchmark worker, and a crash is counted (it costs that file's row, never the CLI).
"""

from __future__ import annotations

import io
import os
import random
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from workbench.errors import UserError

REPO = Path(__file__).resolve().parents[2]


def one_line_or_ok(fn: Callable[[], Any]) -> Any:
    """Call `fn`; a UserError must be one non-empty line, anything else escapes."""
    try:
        return fn()
    except UserError as exc:
        text = str(exc)
        assert text.strip() and "\n" not in text and "\r" not in text, repr(text)
        return exc


# ---------------------------------------------------------------------- option parsers


def parse_option(kind: str, text: str) -> Any:
    """One command-line option value through its parser."""
    from workbench import input_options
    from workbench.commands import args as cli_args
    from workbench.signature import normalize_dtype, parse_dims

    parsers: dict[str, Callable[[], Any]] = {
        "dim": lambda: parse_dims([text]),
        "shape": lambda: input_options.parse_shapes([text]),
        "int-range": lambda: input_options.parse_int_ranges([text]),
        "batch-axis": lambda: input_options.parse_batch_axes([text]),
        "setting": lambda: cli_args.parse_setting(text),
        "batch": lambda: cli_args.int_list(text, "--batch"),
        "dtype": lambda: normalize_dtype(text),
    }
    return one_line_or_ok(parsers[kind])


OPTION_KINDS = ("dim", "shape", "int-range", "batch-axis", "setting", "batch", "dtype")
# Words the CLI parser knows, mixed with random text to build argument lists.
CLI_TOKENS = (
    "bench", "env", "list", "report", "export", "--task", "--batch", "--dim", "--shape",
    "--int-range", "--batch-axis", "--setting", "--threads", "--device", "--min-time",
    "--max-time", "--min-iters", "--warmup", "--profile", "--quick", "--repeats",
    "--output", "--runtime", "--formats", "--precisions", "--input", "--inputs", "ci",
    "json", "cpu", "1,8", "x=Bx4", "seq=8", "0:10", "onnxruntime.allow_spinning=false",
)  # fmt: skip


def parse_command_line(argv: list[str]) -> Any:
    """An argument list through the CLI's parser and the bench options' own parsers (all
    that runs before any model is touched)."""
    from workbench import cli
    from workbench.commands import args as cli_args

    def run() -> Any:
        args = cli.build_parser().parse_args(argv)
        if args.command == "bench":
            cli_args.profile(args)
            cli_args.stop_rule(args)
            cli_args.runtime_settings(args)
            cli_args.devices(args)
            cli_args.threads(args)
            if args.batch:
                cli_args.int_list(args.batch, "--batch")
        return args

    return one_line_or_ok(run)


# ------------------------------------------------------------------ input plans

_DTYPES = ("float32", "float16", "int64", "int32", "uint8", "int8", "bool")


class AnyDims(Mapping[str, int]):
    """Every symbolic dimension set to the same size (for loaders' unknown signatures)."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __getitem__(self, key: str) -> int:
        return self.size

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str)

    def __iter__(self) -> Any:
        return iter(())

    def __len__(self) -> int:
        return 0


def plan_feeds(specs: list[Any], batch: int, dims: dict[str, int], plan: dict[str, Any]) -> Any:
    """Feeds for random specs under a random plan; shapes must come out as resolved."""
    from workbench.model_inputs import InputPlan, make_feeds
    from workbench.signature import FixedBatchError

    def run() -> Any:
        try:
            pool = make_feeds(specs, batch, dims, InputPlan(**plan), pool_size=2)
        except FixedBatchError as exc:  # a failed row of its own, with this message
            assert "\n" not in str(exc)
            return exc
        for feed in pool:
            for spec in specs:
                value = feed[spec.name]
                lo_hi = plan.get("int_ranges", {}).get(spec.name)
                if lo_hi and value.size:
                    assert lo_hi[0] <= int(value.min()) and int(value.max()) < lo_hi[1]
        return pool

    return one_line_or_ok(run)


# ------------------------------------------------------------------ seed model files


def onnx_seed(path: Path) -> Path:
    from tests.support.model_files import stateful_onnx

    return stateful_onnx(path)


_TORCH_SEED = """
import sys, torch
class M(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)
    def forward(self, x):
        return torch.relu(self.lin(x))
m = M().eval()
torch.jit.save(torch.jit.trace(m, torch.ones(2, 4)), sys.argv[1])
"""

_TF_SEED = """
import sys, tensorflow as tf
class M(tf.Module):
    def __init__(self):
        self.w = tf.Variable(tf.ones([4, 3]))
    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
    def __call__(self, x):
        return tf.nn.relu(tf.matmul(x, self.w))
m = M()
tf.saved_model.save(m, sys.argv[2], signatures=m.__call__)
conv = tf.lite.TFLiteConverter.from_concrete_functions([m.__call__.get_concrete_function()], m)
open(sys.argv[1], "wb").write(conv.convert())
"""


def build_seeds(root: Path, formats: tuple[str, ...]) -> dict[str, Path]:
    """Small valid model files of each format (torch and TensorFlow in child processes,
    so neither loads into the fuzzing process)."""
    root.mkdir(parents=True, exist_ok=True)
    seeds: dict[str, Path] = {}
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    if "onnx" in formats:
        seeds["onnx"] = onnx_seed(root / "seed.onnx")
    if "torchscript" in formats:
        path = root / "seed.jit"
        subprocess.run([sys.executable, "-c", _TORCH_SEED, str(path)], check=True, env=env)
        seeds["torchscript"] = path
    if "tflite" in formats or "savedmodel" in formats:
        tfl, saved = root / "seed.tflite", root / "seed_saved"
        subprocess.run(
            [sys.executable, "-c", _TF_SEED, str(tfl), str(saved)],
            check=True,
            env=env,
            capture_output=True,
        )
        seeds["tflite"], seeds["savedmodel"] = tfl, saved
    return seeds


# ------------------------------------------------------------------ mutations


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    """Truncate, flip, overwrite, insert or delete a few bytes."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        n = len(buf)
        if n == 0:
            buf += bytes([rng.randrange(256)])
            continue
        pos = rng.randrange(n)
        if op == 0:
            del buf[rng.randrange(n) :]
        elif op == 1:
            buf[pos] ^= 1 << rng.randrange(8)
        elif op == 2:
            buf[pos] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
        elif op == 3:
            buf[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 4:
            del buf[pos : pos + rng.randint(1, 16)]
        else:  # a 4-byte integer overwritten with an extreme value (sizes, offsets)
            value = rng.choice((0, 0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, rng.getrandbits(32)))
            buf[pos : pos + 4] = value.to_bytes(4, "little")
    return bytes(buf)


def mutate_zip(data: bytes, rng: random.Random) -> bytes:
    """A TorchScript archive with one entry mutated and re-zipped (a mutation of the zip
    bytes themselves mostly fails the CRC and never reaches the unpickler)."""
    if rng.random() < 0.3:
        return mutate_bytes(data, rng)
    src = zipfile.ZipFile(io.BytesIO(data))
    names = src.namelist()
    target = rng.choice(names)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for name in names:
            body = src.read(name)
            if name == target:
                body = mutate_bytes(body, rng)
            if name != target or rng.random() > 0.05:  # sometimes drop the entry
                dst.writestr(name, body)
    return out.getvalue()


def write_mutant(fmt: str, seed: Path, rng: random.Random, dest: Path) -> Path:
    """A mutated copy of `seed` at `dest` (a directory for a SavedModel)."""
    if fmt == "savedmodel":
        import shutil

        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(seed, dest)
        files = sorted(p for p in dest.rglob("*") if p.is_file())
        victim = rng.choice(files)
        victim.write_bytes(mutate_bytes(victim.read_bytes(), rng))
        return dest
    data = seed.read_bytes()
    dest.write_bytes(mutate_zip(data, rng) if fmt == "torchscript" else mutate_bytes(data, rng))
    return dest


def detect(path: Path) -> Any:
    """Format detection on a (mutated) file: a format name or a one-line UserError."""
    from workbench.formats import detect_format

    return one_line_or_ok(lambda: detect_format(path))


# ------------------------------------------------------- loaders in a child process

RUNTIME_OF = {"onnx": "onnxruntime", "tflite": "litert", "torchscript": "torch", "savedmodel": "tensorflow"}  # fmt: skip
TORCH_SPECS = [{"name": "x", "dtype": "float32", "shape": ["batch", 4]}]


def load_child(fmt: str, listing: str, progress: str) -> None:
    """Child: load each file in `listing` with its runtime and run it once at batch 1,
    writing `index` to `progress` before and `index ok|error` after. An exception is an
    ordinary outcome (a failed row); a crash or hang stops the child and the parent
    records it."""
    from workbench.devices import parse_device
    from workbench.model_inputs import InputPlan, declared_int_ranges, make_feeds
    from workbench.registry import get_runtime
    from workbench.runtimes.base import RuntimeOptions
    from workbench.signature import TensorSpec

    runtime = get_runtime(RUNTIME_OF[fmt])
    specs = [TensorSpec(s["name"], s["dtype"], tuple(s["shape"])) for s in TORCH_SPECS]
    paths = Path(listing).read_text().splitlines()
    with open(progress, "a", buffering=1) as log:
        for index, path in enumerate(paths):
            log.write(f"{index}\n")
            options = RuntimeOptions(
                parse_device("cpu"), 1, format=fmt, inputs=specs if fmt == "torchscript" else None
            )
            try:
                loaded = runtime.load(Path(path), options)
                plan = InputPlan(declared_ranges=declared_int_ranges(Path(path), fmt)[0])
                feed = make_feeds(loaded.inputs, 1, AnyDims(2), plan, pool_size=1)[0]
                loaded.run(loaded.prepare(feed))
                loaded.close()
                log.write(f"{index} ok\n")
            except Exception:  # noqa: BLE001 - any Python-level failure is a clean outcome
                log.write(f"{index} error\n")


def fuzz_loader(
    fmt: str, seed: Path, count: int, work: Path, seed_value: int = 0, stall_s: float = 60.0
) -> dict[str, Any]:
    """Load `count` mutants of `seed` in child processes (restarted after each crash or
    hang, from the next file); returns counts of files that loaded and ran, that raised
    (a clean failed row), that crashed the process (by signal) or hung."""
    rng = random.Random(seed_value)
    work.mkdir(parents=True, exist_ok=True)
    suffix = {"onnx": ".onnx", "tflite": ".tflite", "torchscript": ".jit", "savedmodel": ""}[fmt]
    paths = [write_mutant(fmt, seed, rng, work / f"m{i}{suffix}") for i in range(count)]
    result: dict[str, Any] = {"format": fmt, "inputs": count, "ok": 0, "error": 0}
    result.update(crashes=0, hangs=0, crash_kinds={})
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    start = 0
    while start < count:
        listing, progress = work / "listing.txt", work / "progress.txt"
        listing.write_text("\n".join(str(p) for p in paths[start:]))
        progress.write_text("")
        code = f"from tests.support.fuzz_targets import load_child; load_child({fmt!r}, {str(listing)!r}, {str(progress)!r})"
        proc = subprocess.Popen(
            [sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )  # fmt: skip
        last, seen, hung = time.monotonic(), 0, False
        while proc.poll() is None:
            time.sleep(0.1)
            size = progress.stat().st_size
            if size != seen:
                seen, last = size, time.monotonic()
            elif time.monotonic() - last > stall_s:
                proc.kill()
                proc.wait()
                hung = True
        lines = [ln.split() for ln in progress.read_text().splitlines() if ln.strip()]
        for parts in lines:
            if len(parts) == 2:
                result[parts[1]] += 1
        finished = {int(p[0]) for p in lines if len(p) == 2}
        started = [int(p[0]) for p in lines if len(p) == 1]
        stuck = next((i for i in started if i not in finished), None)
        if stuck is None:
            if proc.returncode != 0:  # the child died before loading anything
                result["crash_kinds"][f"startup exit {proc.returncode}"] = 1
            break
        kind = (
            "hang"
            if hung
            else (
                f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit {proc.returncode}"
            )
        )
        result["hangs" if hung else "crashes"] += 1
        result["crash_kinds"][kind] = result["crash_kinds"].get(kind, 0) + 1
        result.setdefault("examples", []).append(str(paths[start + stuck]))
        start += stuck + 1
    return result


# ------------------------------------------------------------ hypothesis properties


def _strategies() -> dict[str, Any]:
    from hypothesis import strategies as st

    name = st.sampled_from(["x", "state", "sr", "ids"])
    dim = st.one_of(st.integers(-2, 6), st.none(), st.sampled_from(["batch", "seq", "", "B"]))
    spec = st.builds(
        lambda n, d, s: __import__("workbench.signature", fromlist=["TensorSpec"]).TensorSpec(
            n, d, tuple(s)
        ),
        name,
        st.sampled_from(_DTYPES),
        st.lists(dim, max_size=4),
    )
    specs = st.lists(spec, min_size=1, max_size=4, unique_by=lambda s: s.name)
    axes = st.lists(st.one_of(st.integers(1, 6), st.just("B")), max_size=4)
    low = st.integers(-300, 300)
    plan = st.fixed_dictionaries(
        {},
        optional={
            "shapes": st.dictionaries(name, axes, max_size=2),
            "batch_axes": st.dictionaries(
                name, st.one_of(st.none(), st.integers(0, 4)), max_size=2
            ),
            "int_ranges": st.dictionaries(
                name,
                st.tuples(low, st.integers(1, 400)).map(lambda t: [t[0], t[0] + t[1]]),
                max_size=2,
            ),
        },
    )
    token = st.one_of(
        st.sampled_from(CLI_TOKENS), st.sampled_from(CLI_TOKENS), st.text(max_size=12)
    ).filter(lambda t: not t.startswith(("-h", "--h")))
    return {
        "option": st.tuples(
            st.sampled_from(OPTION_KINDS),
            st.one_of(
                st.text(max_size=40),
                st.from_regex(r"\A[\w.]{0,8}=[-0-9Bbx,:.a-z ]{0,16}\Z"),
                st.from_regex(r"\A-?[0-9]{0,3}([,:x]-?[0-9]{0,3}){0,4}\Z"),
            ),
        ),
        "argv": st.one_of(
            st.lists(token, max_size=8).map(lambda argv: ["bench", "model.onnx", *argv]),
            st.lists(token, max_size=8),
        ),
        "feeds": st.tuples(specs, st.integers(1, 5), st.dictionaries(st.sampled_from(["seq", "batch", "B"]), st.integers(1, 5)), plan),
        "mutation": st.randoms(use_true_random=False),
    }  # fmt: skip


def hypothesis_targets(seeds: dict[str, Path], scratch: Path) -> dict[str, Callable[..., Any]]:
    """name -> (strategy, property) for the in-process targets; `seeds` are valid files to
    mutate for format detection, written under `scratch`."""
    strategies = _strategies()
    counter = iter(range(1 << 62))

    def detect_mutant(rng: random.Random) -> Any:
        fmt = rng.choice(sorted(seeds))
        dest = scratch / f"d{next(counter) % 64}{'' if fmt == 'savedmodel' else seeds[fmt].suffix}"
        return detect(write_mutant(fmt, seeds[fmt], rng, dest))

    return {
        "option parsers": (strategies["option"], lambda t: parse_option(*t)),
        "command line": (strategies["argv"], parse_command_line),
        "input plans": (strategies["feeds"], lambda t: plan_feeds(*t)),
        "format detection": (strategies["mutation"], detect_mutant),
    }


def run_property(strategy: Any, prop: Callable[[Any], Any], examples: int) -> int:
    """Run `prop` on `examples` generated inputs (fails on the first counterexample);
    returns how many inputs were tried."""
    from hypothesis import HealthCheck, given, settings

    tried = 0

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
    )
    @given(strategy)
    def check(value: Any) -> None:
        nonlocal tried
        tried += 1
        prop(value)

    check()
    return tried


def light_seeds(root: Path) -> dict[str, Path]:
    """Seeds for format detection without torch or TensorFlow: a real ONNX model, and a
    TFLite header, a TorchScript archive layout and a SavedModel directory (detection
    reads only these parts)."""
    root.mkdir(parents=True, exist_ok=True)
    tflite = root / "seed.tflite"
    tflite.write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(range(200)))
    jit = root / "seed.jit"
    with zipfile.ZipFile(jit, "w") as archive:
        for entry in ("m/data.pkl", "m/code/__torch__.py", "m/constants.pkl", "m/version"):
            archive.writestr(entry, "x" * 20)
    saved = root / "seed_saved"
    (saved / "variables").mkdir(parents=True, exist_ok=True)
    (saved / "saved_model.pb").write_bytes(b"\x08\x01\x12\x04abcd")
    (saved / "variables" / "variables.index").write_bytes(b"\x00" * 16)
    return {
        "onnx": onnx_seed(root / "seed.onnx"),
        "tflite": tflite,
        "torchscript": jit,
        "savedmodel": saved,
    }
