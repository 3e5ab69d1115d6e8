"""`workbench model init|check`: describe your own model in one `model.yaml`, and check it.

    workbench model init my_pkg.nets:make_model --sample batch.npz      # PyTorch/Keras factory
    workbench model init model.keras --sample batch.npz                  # a Keras file
    workbench model init ./saved_model --sample batch.npz                # a TF SavedModel
    workbench model init ./hf-dir --texts "some text" "more text"       # Hugging Face directory
    workbench model init ./hf-vit --images photos/                      # ... an image classifier
    workbench model init model.onnx --sample batch.npz                   # an ONNX file
    workbench model check model.yaml                                     # every problem at once

then `workbench export model.yaml`, `workbench bench model.yaml`,
`workbench serve --model NAME=model.yaml`, `workbench recommend --task NAME`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from workbench.commands.args import Subparsers, add_subcommands
from workbench.errors import UserError


def add_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "model", help="describe your own model in a model.yaml (init) and check it (check)"
    )
    sub = add_subcommands(parser, "model_command")
    init = sub.add_parser("init", help="probe a model on one real batch and write model.yaml")
    init.add_argument(
        "source",
        help="module:function or file.py:function (PyTorch or Keras factory), a .keras file, "
        "a TensorFlow SavedModel directory, a Hugging Face directory, or an .onnx file",
    )
    init.add_argument("--sample", help="one real batch of inputs: .npz of NAME=array")
    init.add_argument("-o", "--out", default="model.yaml", help="the spec to write")
    init.add_argument("--name", help="the model's name in rows and reports (default: the source's)")
    init.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="NAME=SHAPE[:DTYPE]",
        help="an input's shape and dtype, over what the sample says: B is the batch axis, "
        "e.g. --input pixels=Bx3x224x224:float32",
    )
    init.add_argument("--texts", nargs="+", help="Hugging Face: texts the tokenizer encodes")
    init.add_argument(
        "--images",
        nargs="+",
        help="Hugging Face image classifier: image files (or folders of them) its image "
        "processor turns into the sample",
    )
    init.add_argument("--weights", help="PyTorch factory: a state_dict file (weights_only)")
    init.add_argument(
        "--hf-task",
        help="Hugging Face task (default: from config architectures): text-classification, "
        "token-classification, feature-extraction, image-classification",
    )
    init.add_argument("--calibration", help="static INT8 data: .npz, .npy dir or module:function")
    init.add_argument(
        "--calibration-random",
        action="store_true",
        help="calibrate static INT8 on synthetic inputs when no data is given (rows say so)",
    )
    init.add_argument("--eval", dest="evaluation", help="evaluation inputs (with labels)")
    init.add_argument("--labels", help="labels of --eval when not inside it (.npy)")
    init.add_argument(
        "--metric", help="top-1, top-5, mse, mae, macro-f1, auc, cosine, module:function"
    )
    init.add_argument(
        "--metric-output",
        metavar="NAME",
        help="the output the metric scores (default: the first with class scores)",
    )
    init.add_argument(
        "--max-accuracy-drop",
        type=float,
        default=1.0,
        help="points of the metric any artifact may lose (default 1.0)",
    )
    check = sub.add_parser("check", help="preflight: every problem with a model.yaml at once")
    check.add_argument("spec", help="the model.yaml")


def run(args: argparse.Namespace) -> int:
    # lazy: numpy, yaml (the spec machinery)
    from workbench.usermodel.workflow import check_spec, init_spec

    if args.model_command == "init":
        out = Path(args.out)
        spec, notes = init_spec(
            args.source,
            out,
            sample=args.sample,
            name=args.name,
            inputs=args.input,
            texts=args.texts,
            images=args.images,
            weights=args.weights,
            hf_task=args.hf_task,
            calibration=args.calibration,
            calibration_random=args.calibration_random,
            evaluation=args.evaluation,
            labels=args.labels,
            metric=args.metric,
            max_accuracy_drop=args.max_accuracy_drop,
            metric_output=args.metric_output,
        )
        print(f"wrote {out}: model {spec.name!r} ({spec.framework}, {spec.source.kind})")
        for spec_t in spec.inputs:
            print(f"  input  {spec_t.name}: {spec_t.dtype} {list(spec_t.shape)}")
        for spec_t in spec.outputs:
            print(f"  output {spec_t.name}: {spec_t.dtype} {list(spec_t.shape)}")
        for note in notes:
            print(f"  {note}")
        print(f"next: workbench model check {out} && workbench bench {out}")
        return 0
    report = check_spec(args.spec)
    for note in report.notes:
        print(f"note: {note}")
    for problem in report.problems:
        print(f"problem: {problem}", file=sys.stderr)
    if report.problems:
        raise UserError(f"{args.spec}: {len(report.problems)} problem(s), listed above")
    print(f"{args.spec}: ok")
    return 0
