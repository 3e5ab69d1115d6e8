#!/usr/bin/env python
"""Write the notebooks in notebooks/ (stripped: no outputs, no execution counts).

The cell sources below are the notebooks' source of truth; edit them here and
rerun (`make notebooks-gen`), or edit a notebook in JupyterLab and keep this file
in step. A task registered in `workbench.tasks` without a notebook gets one from
the task template: `python scripts/make_notebooks.py` (existing notebooks are
rewritten only with --force or when named: `python scripts/make_notebooks.py tabular`).

Every notebook: a title, `notebook_params.begin(globals())`, a cell tagged
`parameters` (typed, commented defaults, a `profile` of "ci" or "full"), then
`notebook_params.check(globals())` which fails fast on an unknown name or a wrong
type, then calls into the package, tables, plots and a short reading. Cells whose
output is deterministic on a given host carry `# NBVAL_CHECK_OUTPUT`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

KERNELSPEC = {"name": "workbench", "display_name": "Python (workbench)", "language": "python"}
PROFILE_LINE = (
    'profile: str = "ci"  # "ci": tiny sizes, a minute or two on 2 cores; "full": the real study'
)
SETUP = """%matplotlib inline
from workbench.study import notebook_params

notebook_params.begin(globals())  # names defined before the parameters cell"""
CHECK = """# Fails fast, naming the parameter and its type, on an unknown name or a wrong type.
P = notebook_params.check(globals())

import pandas as pd
from IPython.display import display

from workbench import study
from workbench.report import plots

pd.set_option("display.max_columns", 40)
pd.set_option("display.width", 200)
pd.set_option("display.max_colwidth", 80)
P"""


def md(text: str) -> nbformat.NotebookNode:
    return nbformat.v4.new_markdown_cell(text.strip("\n"))


def code(text: str, *tags: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(text.strip("\n"))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def notebook(name: str, title: str, params: str, body: list[nbformat.NotebookNode]):
    cells = [
        md(title),
        code(SETUP),
        code(PROFILE_LINE + "\n" + params.strip("\n"), "parameters"),
        code(CHECK),
        *body,
    ]
    nb = nbformat.v4.new_notebook(cells=cells)
    for i, cell in enumerate(nb.cells):
        cell.id = f"{name.replace('_', '-')}-{i:02d}"
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    return nb


# ------------------------------------------------------------------ 00_quickstart


def quickstart():
    return notebook(
        "00_quickstart",
        """
# Quickstart: the environment, one benchmark, the results DataFrame

The workbench exports a model, checks the artifact against its source, and measures every
call's latency. This notebook shows the three steps on the smallest model: where it runs,
one measurement, and how to read the result rows.
""",
        """
task: str = "tabular"  # a registered task (workbench.tasks.base.task_names())
model: str = "mlp"  # one of the task's models
framework: str = "torch"  # source framework: "torch" or "keras"
format: str = "onnx"  # onnx, torchscript, pt2, tflite, savedmodel, eager, keras
batch_sizes: list[int] = []  # items per call; empty: ci 1, 8, 64; full 1..256
""",
        [
            md(
                "## 1. Where it runs\nEvery number below belongs to this host: CPU flags, "
                "cores, GPU, library versions and the code's git commit."
            ),
            code("""from workbench.env import fingerprint, format_fingerprint

print(format_fingerprint(fingerprint()))"""),
            md(
                "## 2. Benchmark one model\nExport (cached by content hash), parity check, "
                "then the timed loop in a worker process per configuration."
            ),
            code("""sweep = study.sweep_for(
    P.task, P.profile, models=[P.model], frameworks=[P.framework], formats=[P.format],
    precisions=["fp32"], batch_sizes=P.batch_sizes,
)
print(study.describe(sweep))
frame = study.measure(sweep)
caption = study.caption(frame)
study.table(frame)"""),
            md(
                "## 3. Read the results\nRows are stored under `.workbench/runs/<run_id>/` "
                "and load as one DataFrame; `latencies_ms` keeps every timed call."
            ),
            code("""from workbench import results

df = results.load(run_ids=frame["run_id"].unique())
df[["format", "precision", "runtime", "batch_size", "latency_ms_p50", "latency_ms_p99",
    "throughput_items_per_s", "n_iterations", "stable"]]"""),
            code("""# NBVAL_CHECK_OUTPUT - the shape of the result rows (deterministic)
print(f"{df.shape[1]} fields per row; statuses {sorted(df['status'].unique())}; "
      f"batch sizes {sorted(int(b) for b in df['batch_size'])}")"""),
            code("plots.latency_cdf(frame, caption)"),
            code("plots.throughput_vs_batch(frame, caption)"),
            code("""headline = study.headline_numbers(frame)
study.record_headline("00_quickstart", headline, P.profile)
for key, value in headline.items():
    print(f"{key}: {value}")"""),
            md("""
## Reading
The table gives the p50 and p99 latency per call and the throughput at each batch size; the
CDF shows the whole distribution of calls, so a long tail (p99 far from p50) is visible at a
glance; `stable` is false when the p50's confidence interval is wide (rerun on a quieter
host, or with the `full` profile's longer measurement). Throughput grows with the batch size
until the model saturates the cores.
"""),
        ],
    )


# ------------------------------------------------------------------ task notebooks


TASK_EXTRAS: dict[str, list[nbformat.NotebookNode]] = {
    "image_classification": [
        md("""
## Real photos through the exported artifacts
EfficientNet-Lite0 carries real ImageNet weights, so its artifacts can be read: each ONNX
and TFLite artifact classifies photos bundled with scikit-image, through the task's own
pipeline (decode, resize 256, centre crop 224, normalize; softmax, top-k). A quantized
artifact should name the same classes as FP32. (Empty when the sweep has no
EfficientNet-Lite0 ONNX/TFLite artifact.)
"""),
        code("""from workbench.study import demos

display(demos.photo_predictions(frame, ["chelsea", "coffee", "rocket", "motorcycle"]))"""),
        md("""
## Accuracy on real labels
The digits CNN (trained here on scikit-learn's bundled digits) is checked on its 360
held-out images with their true labels: the export matrix's `accuracy` column is each
artifact's top-1 accuracy there, FP32 to INT8.
"""),
    ],
    "object_detection": [
        md("""
## Detections of the exported artifacts on held-out scenes
Each ONNX and TFLite artifact runs end to end (letterbox, model, threshold, class-aware
NMS, boxes mapped back to the original image) on scenes it never saw: red boxes are its
detections, dashed green boxes the ground truth.
"""),
        code("""from workbench.study import demos
from workbench.vision.scenes import CLASSES

plots.detections(demos.detection_examples(frame), list(CLASSES), caption)"""),
    ],
}


def task_notebook(task: str):
    from workbench.tasks.base import get_task

    t = get_task(task)
    doc = (type(t).__doc__ or "").strip().splitlines()[0] if type(t).__doc__ else ""
    return notebook(
        task,
        f"""
# Task `{task}`: formats x precisions x runtimes x batch sizes

{doc} Models: {", ".join(f"`{m}`" for m in t.models)}. The notebook exports each model to
every requested format and precision, checks each artifact against its source model, and
measures latency and throughput per batch size, device and thread count.
""",
        """
models: list[str] = []  # model variants of the task; empty: the profile's choice
frameworks: list[str] = []  # source frameworks "torch", "keras"; empty: the profile's choice
formats: list[str] = []  # onnx, torchscript, pt2, tflite, savedmodel, eager, keras; empty: the profile's
precisions: list[str] = []  # fp32, fp16, int8-dynamic, int8-static; empty: the profile's
batch_sizes: list[int] = []  # items per call; empty: the profile's
devices: list[str] = []  # "cpu", "cuda", "cuda:1"; empty: ci cpu, full cpu + cuda
threads: list[int] = []  # intra-op thread counts; empty: every core available
""",
        [
            code(f"""TASK = "{task}"
sweep = study.sweep_for(
    TASK, P.profile, models=P.models, frameworks=P.frameworks, formats=P.formats,
    precisions=P.precisions, batch_sizes=P.batch_sizes, devices=P.devices, threads=P.threads,
)
print(study.describe(sweep))
frame = study.measure(sweep)
caption = study.caption(frame)
print(caption)"""),
            md(
                "## Export matrix\nWhat was measured, its status and the parity verdict "
                "(the artifact against its source model on held-out inputs)."
            ),
            code("""# NBVAL_CHECK_OUTPUT - statuses and parity verdicts are deterministic on a host
print(study.export_matrix(frame).to_string(index=False))"""),
            md("## All rows"),
            code("study.table(frame)"),
            md("## Latency distribution per configuration"),
            code("plots.latency_cdf(frame, caption)"),
            md("## Throughput against batch size"),
            code("plots.throughput_vs_batch(frame, caption)"),
            md("## Speedup over FP32"),
            code("""speedups = study.speedup_over_fp32(frame)
display(speedups[speedups["precision"] != "fp32"])
plots.speedup(speedups, caption)"""),
            md("""
## End to end: pre-processing, model, post-processing
Where the task has pre- and post-processing (decoding images, resizing, normalizing;
softmax and top-k, or box decoding and NMS), each call is also timed end to end from the
raw input, stage by stage. The model stage there includes the runtime's input conversion,
which the model-only figures leave out.
"""),
            code("""e2e = study.end_to_end(frame)
display(e2e)
plots.end_to_end_stages(e2e, caption)"""),
            *TASK_EXTRAS.get(task, []),
            md("## Memory"),
            code("plots.memory(frame, caption)"),
            code("""headline = study.headline_numbers(frame)
study.record_headline(TASK, headline, P.profile)
for key, value in headline.items():
    print(f"{key}: {value}")"""),
            md("""
## Reading
The export matrix says what could be produced and whether it still agrees with its source
model; a configuration is only worth its speed when parity passes. The CDF shows each
configuration's spread of call latencies (a step far to the right is a slow tail). The
throughput plot shows where batching stops paying; the speedup plot compares each precision
with FP32 of the same format, runtime and batch (above 1: faster). The memory plot puts the
measuring process's peak RSS next to the file size.
"""),
        ],
    )


# ------------------------------------------------------------------ quantization_study


def quantization_study():
    return notebook(
        "quantization_study",
        """
# Quantization study: accuracy x latency x size for every precision

One model exported at FP32, FP16, INT8 (dynamic) and INT8 (static, calibrated on the task's
own generator), each checked against the source model and measured. The Pareto front marks
the artifacts no other artifact beats on latency, size and quality at once.
""",
        """
task: str = ""  # empty: the profile's (tabular: a trained model, so accuracy means something)
model: str = ""  # empty: the profile's (tabular mlp)
frameworks: list[str] = []  # empty: ci torch, full torch and keras
formats: list[str] = []  # empty: ci onnx, full every format
batch_sizes: list[int] = []  # empty: 1 and 64
""",
        [
            code("""sweep = study.quantization_sweep(
    P.profile, task=P.task, model=P.model, frameworks=P.frameworks, formats=P.formats,
    batch_sizes=P.batch_sizes,
)
print(study.describe(sweep))
frame = study.measure(sweep)
caption = study.caption(frame)
print(caption)"""),
            code("""# NBVAL_CHECK_OUTPUT - parity verdict per precision (deterministic on a host)
print(study.export_matrix(frame).to_string(index=False))"""),
            md("## Accuracy, latency and size; the Pareto front"),
            code("""front = study.pareto(frame)
display(front)
plots.pareto(front, caption)"""),
            md("## Speedup and size reduction over FP32"),
            code("""speedups = study.speedup_over_fp32(frame)
display(speedups[speedups["precision"] != "fp32"][
    ["model", "source_framework", "format", "precision", "batch_size", "latency_ms_p50",
     "speedup", "size_ratio"]])
plots.speedup(speedups, caption)"""),
            code("plots.latency_cdf(frame, caption)"),
            code("""on_front = front[front["on_front"]]
quant = speedups[speedups["precision"] != "fp32"]
headline = {
    "on the Pareto front": ", ".join(
        f"{r.source_framework}/{r.format}/{r.precision}" for r in on_front.itertuples()) or "-",
}
if not quant.empty:
    fastest = quant.loc[quant["speedup"].idxmax()]
    smallest = quant.loc[quant["size_ratio"].idxmax()]
    headline["best speedup over fp32"] = (
        f"{fastest['speedup']:.2f}x: {fastest['format']}/{fastest['precision']} "
        f"at batch {int(fastest['batch_size'])}")
    headline["best size reduction"] = (
        f"{smallest['size_ratio']:.2f}x: {smallest['format']}/{smallest['precision']}")
study.record_headline("quantization_study", headline, P.profile)
for key, value in headline.items():
    print(f"{key}: {value}")"""),
            md("""
## Reading
Quality is the accuracy on held-out labelled data where the task has labels (tabular), else
the agreement with the source model (`parity_metric_value`). An artifact off the front is
beaten on all three axes by some other one; among the front, the choice is a trade-off. INT8
shrinks files about 4x; whether it is faster depends on the runtime having integer kernels
for the model's layers on this CPU (see `cpu_int8_support` in the artifact manifest).
"""),
        ],
    )


# ------------------------------------------------------------------ cpu_vs_gpu


def cpu_vs_gpu():
    return notebook(
        "cpu_vs_gpu",
        """
# CPU vs GPU: latency and throughput by batch size

One artifact measured over batch sizes on the CPU and on each GPU, and the batch size from
which the GPU's throughput overtakes the CPU's. On a host without a GPU the GPU rows are
`unavailable` with the reason, and only the CPU side is shown.
""",
        """
task: str = ""  # empty: ci tabular, full image_classification
model: str = ""  # empty: ci mlp, full resnet50
format: str = ""  # empty: onnx
precision: str = ""  # empty: fp32
batch_sizes: list[int] = []  # empty: ci 1, 8, 64, 256; full 1..64
devices: list[str] = []  # empty: cpu and cuda
""",
        [
            code("""sweep = study.cpu_gpu_sweep(
    P.profile, task=P.task, model=P.model, fmt=P.format, precision=P.precision,
    batch_sizes=P.batch_sizes, devices=P.devices,
)
print(study.describe(sweep))
frame = study.measure(sweep)
caption = study.caption(frame)
print(caption)"""),
            code("""# NBVAL_CHECK_OUTPUT - which devices could run here (deterministic on a host)
print(study.export_matrix(frame).to_string(index=False))"""),
            code("""crossing, reading = study.crossover(frame)
print(reading)
if not crossing.empty:
    display(crossing)"""),
            code("study.table(frame)"),
            code("plots.by_device(frame, caption)"),
            code("plots.latency_cdf(frame, caption)"),
            code("""best_cpu = study.headline_numbers(frame[frame["device"] == "cpu"]).get("best throughput", "-")
headline = {"GPU vs CPU": reading, "best CPU throughput": best_cpu}
study.record_headline("cpu_vs_gpu", headline, P.profile)
for key, value in headline.items():
    print(f"{key}: {value}")"""),
            md("""
## Reading
A GPU call carries a fixed cost (launches, copies, synchronization), so at small batches the
CPU is often faster; the GPU pays off from the batch size where its throughput line crosses
the CPU's. Dashed lines are GPU rows. Without a GPU the sentence above says so and why.
"""),
        ],
    )


# ------------------------------------------------------------------ seed_claims


def seed_claims():
    return notebook(
        "seed_claims",
        """
# The source guide's claims, re-measured on this host

Each claim in DESIGN.md's table is measured with the workbench's own runs and marked
**confirmed**, **refuted** or **not measurable here**, with the numbers and the reason. The
rules: a ratio claim is confirmed within `ratio_tolerance` of the claimed range, an absolute
hardware figure within `absolute_tolerance` (it depends on the exact CPU or GPU).
""",
        """
devices: list[str] = []  # devices for the GPU claims; empty: cpu and cuda
ratio_tolerance: float = 0.25  # a ratio claim ("4x", "3-5x") holds within +/- this fraction
absolute_tolerance: float = 0.5  # an absolute figure ("~500 ms") holds within +/- this fraction
""",
        [
            code("""from workbench.study import claims

settings = claims.SETTINGS[P.profile]
for section, text in claims.CLAIMS.items():
    print(f"{section:>4}  {text}")
print()
for note in settings.notes:
    print("note:", note)"""),
            code("""frames = claims.measure(P.profile, devices=P.devices or None)
caption = study.caption(pd.concat([f for k, f in frames.items() if k != "null"]))
print(caption)"""),
            code("""verdicts = claims.judge(frames, P.profile, P.ratio_tolerance, P.absolute_tolerance)
for row in verdicts.itertuples():
    print(f"[{row.verdict.upper()}] {row.section} {row.claim}: claimed {row.claimed}; "
          f"measured {row.measured}; {row.why}")"""),
            code("""# NBVAL_CHECK_OUTPUT - which claims this host cannot measure, and why (deterministic)
blocked = verdicts[verdicts["verdict"] == claims.NOT_MEASURABLE]
print(blocked[["section", "claim", "why"]].to_string(index=False))"""),
            code("verdicts"),
            md("## The measurements behind the verdicts"),
            code("""all_rows = pd.concat([frames[k] for k in ("cnn", "cnn_precisions", "keras", "small")])
study.table(all_rows)"""),
            code("plots.by_device(pd.concat([frames['cnn'], frames['small']]), caption)"),
            code(
                "plots.speedup(study.speedup_over_fp32(pd.concat([frames['cnn'], frames['cnn_precisions']])), caption)"
            ),
            code("""n = claims.counts(verdicts)
headline = {
    "verdicts": f"{n['confirmed']} confirmed, {n['refuted']} refuted, "
                f"{n['not measurable here']} not measurable here",
    **{
        f"{r.section} {r.claim}": f"{r.verdict}: {r.measured if r.measured != '-' else r.why}"
        for r in verdicts.itertuples()
    },
}
study.record_headline("seed_claims", headline, P.profile)
print(headline["verdicts"])"""),
            md("""
## Reading
The guide's absolute figures come from other hardware: a refuted absolute number mostly says
this host is faster or slower than the guide's, while the ratios (quantization speedups,
batching gains, the Python overhead) are the transferable part. GPU claims cannot be
measured on a host without a GPU and say so. In the `ci` profile the CNN measurements use
few calls and dynamic INT8 (see the notes above); run the `full` profile for the real study.
"""),
        ],
    )


# ------------------------------------------------------------------ summary


def summary():
    return notebook(
        "summary",
        """
# Summary: the headline numbers of every report

Each notebook records a few headline numbers when it runs; this one gathers them, with the
status of the last notebook run. It runs last in `workbench notebooks run`.
""",
        """
include: list[str] = []  # notebooks to show; empty: every one that recorded headlines
""",
        [
            code("""import json

records = study.read_headlines()
if P.include:
    records = {k: v for k, v in records.items() if k in P.include}
status_path = study.reports_dir() / "notebooks.json"
status = json.loads(status_path.read_text()) if status_path.exists() else {"notebooks": []}
runs = pd.DataFrame(status["notebooks"], columns=["name", "status", "duration_s", "error"])
print(f"last notebook run: profile {status.get('profile')}, {status.get('started')} UTC, "
      f"{status.get('host')}")
runs"""),
            code("""table = study.headlines_table(records)
print(f"{len(records)} notebooks recorded headline numbers")
table"""),
            md("""
## Reading
Each row is one headline of one notebook, with the profile it ran with and when: numbers
from the `ci` profile are smoke-test sizes, not the study. Failed notebooks appear in the
run table above with their error; their headlines are missing or from an earlier run (see
the time).
"""),
        ],
    )


FIXED = {
    "00_quickstart": quickstart,
    "quantization_study": quantization_study,
    "cpu_vs_gpu": cpu_vs_gpu,
    "seed_claims": seed_claims,
    "summary": summary,
}


def build_all() -> dict[str, nbformat.NotebookNode]:
    from workbench.tasks.base import task_names

    books = {name: make() for name, make in FIXED.items()}
    books.update({task: task_notebook(task) for task in task_names()})
    return books


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="write only these (default: missing ones)")
    parser.add_argument("--force", action="store_true", help="rewrite existing notebooks")
    parser.add_argument("--out", default=str(REPO / "notebooks"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    books = build_all()
    unknown = sorted(set(args.names) - set(books))
    if unknown:
        parser.error(f"unknown notebook(s) {', '.join(unknown)}: choose from {', '.join(books)}")
    for name, nb in books.items():
        path = out / f"{name}.ipynb"
        if args.names and name not in args.names:
            continue
        if path.exists() and not (args.force or args.names):
            continue
        nbformat.validate(nb)
        path.write_text(nbformat.writes(nb) + "\n", encoding="utf-8")
        print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
