"""`workbench serve`: the flags, and the call into workbench.serving.server."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from workbench import input_options as opts
from workbench.batching import BatcherConfig
from workbench.commands.args import Subparsers
from workbench.errors import UserError
from workbench.serving import logs
from workbench.serving.compiled_front import LOOPBACK, server_argv
from workbench.serving.urlfetch import UrlPolicy
from workbench.signature import parse_dims

if TYPE_CHECKING:
    from workbench.serving.registry import WarmupShapes
    from workbench.serving.server import ModelSpec
    from workbench.serving.service import ServeSettings


DEFAULT_TIMEOUT_S = 10.0  # --timeout-s
DEFAULT_MAX_INFLIGHT = 64  # --max-inflight


def add_parser(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve models over HTTP and gRPC (KServe v2) through the dynamic batcher",
        description="Serve model versions (task artifacts, model files or the null model) "
        "over KServe v2 HTTP + gRPC, with task endpoints, A/B weights and /metrics.",
    )
    parser.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="NAME[:VERSION]=SOURCE",
        help="a model version to serve; SOURCE: null, task:TASK[/MODEL] or a model file, "
        "FILE@RUNTIME to pick its runtime (e.g. m.onnx@openvino; repeat for more models or "
        "versions)",
    )
    parser.add_argument(
        "--weight",
        action="append",
        default=[],
        metavar="NAME:VERSION=W",
        help="A/B weight of a version (requests naming no version are split by weight)",
    )
    parser.add_argument(
        "--default", action="append", default=[], metavar="NAME:VERSION", help="default version"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the A/B draws")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default loopback)")
    parser.add_argument("--http-port", type=int, default=8000, help="HTTP port (0: any free)")
    parser.add_argument(
        "--grpc-port", type=int, default=8001, help="gRPC port (0: any free, -1: no gRPC)"
    )
    parser.add_argument(
        "--endpoint",
        action="append",
        default=[],
        metavar="NAME=MODEL[,KEY=VALUE]",
        help="mount a task endpoint, e.g. classify=effnet (/api/v1/classify)",
    )
    parser.add_argument("--max-batch", type=int, default=8, help="batcher: max batch size")
    parser.add_argument("--max-queue-delay-ms", type=float, default=1.0, help="batcher delay")
    parser.add_argument(
        "--max-queue-size", type=int, default=256, help="queued requests before HTTP 429"
    )
    parser.add_argument("--no-batcher", action="store_true", help="run every request alone")
    parser.add_argument("--instances", type=int, default=1, help="model instances per version")
    parser.add_argument(
        "--timeout-s",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="per-request deadline from arrival: reading, parsing, queueing and compute (504)",
    )
    parser.add_argument(
        "--max-inflight",
        type=int,
        default=DEFAULT_MAX_INFLIGHT,
        help="inference requests in flight at the front, reading and parsing included; "
        "past it a request is answered 429 / RESOURCE_EXHAUSTED before its body is read",
    )
    parser.add_argument(
        "--parse-workers",
        type=int,
        default=1,
        help="processes that parse large JSON request bodies off the server's event loop "
        "(0: parse on threads)",
    )
    parser.add_argument(
        "--dim",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="size a model file's symbolic dimension for warm-up (as bench; requests may "
        "use any size); without it a version warms up on its first request",
    )
    parser.add_argument(
        "--shape",
        action="append",
        default=[],
        metavar="NAME=AXES",
        help="a model file input's warm-up shape, axes joined by x, B for the batch axis, "
        "e.g. --shape images=Bx3x640x640 (repeatable)",
    )
    parser.add_argument("--max-body-mb", type=float, default=16.0, help="request size cap")
    parser.add_argument("--drain-s", type=float, default=30.0, help="SIGTERM drain limit")
    parser.add_argument(
        "--model-control",
        action="store_true",
        help="enable /v2/repository load/unload/weights (loading files named by clients)",
    )
    parser.add_argument(
        "--allow-url-host",
        action="append",
        default=[],
        metavar="HOST",
        help="enable image_url on task endpoints for this host (repeat; off by default)",
    )
    parser.add_argument("--url-max-mb", type=float, default=10.0, help="image_url size cap")
    parser.add_argument("--url-timeout-s", type=float, default=5.0, help="image_url timeout")
    parser.add_argument("--log-level", default="info", help="debug logs every request")
    parser.add_argument(
        "--front",
        choices=("python", "compiled"),
        default="python",
        help="compiled: the C++ KServe v2 HTTP server over ONNX Runtime's C API (one .onnx "
        "model, no batcher, no gRPC)",
    )


def _pair(text: str, flag: str) -> tuple[str, str]:
    name, sep, version = text.partition(":")
    if not sep or not name or not version:
        raise UserError(f"{flag} needs NAME:VERSION, got {text!r}")
    return name, version


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM or Ctrl-C, then drain."""
    # lazy: fastapi, prometheus_client (the serving stack; a PyTorch-only host may lack it)
    from workbench.serving.endpoints import EndpointConfig
    from workbench.serving.server import build_service, serve

    if args.front == "compiled":
        return _serve_compiled(args)
    logs.setup(args.log_level)
    for value, flag in (
        (args.max_body_mb, "--max-body-mb"),
        (args.timeout_s, "--timeout-s"),
        (args.max_inflight, "--max-inflight"),
    ):
        if value <= 0:
            raise UserError(f"{flag} must be > 0, got {value}")
    if args.parse_workers < 0:
        raise UserError(f"--parse-workers must be >= 0, got {args.parse_workers}")
    models = parse_models(args.model)
    weights = _weights(args.weight)
    batcher = (
        None
        if args.no_batcher
        else BatcherConfig(
            max_batch_size=args.max_batch,
            max_queue_delay_ms=args.max_queue_delay_ms,
            max_queue_size=args.max_queue_size,
        )
    )
    settings = _settings(args)
    endpoints = [EndpointConfig.parse(e) for e in args.endpoint]
    service = build_service(
        models,
        batcher,
        settings,
        seed=args.seed,
        instances=args.instances,
        weights=weights,
        defaults=[_pair(d, "--default") for d in args.default],
        warmup=warmup_shapes(args),
    )
    return serve(
        service,
        endpoints,
        host=args.host,
        http_port=args.http_port,
        grpc_port=None if args.grpc_port < 0 else args.grpc_port,
    )


def parse_models(items: list[str]) -> list[ModelSpec]:
    """`--model NAME[:VERSION]=SOURCE` items (the one place they are parsed)."""
    from workbench.serving.server import ModelSpec  # lazy: the serving stack

    return [ModelSpec.parse(_spec_source(m)) for m in items]


def warmup_shapes(args: argparse.Namespace) -> WarmupShapes:
    """`--dim` and `--shape` (parsed as `bench` parses them) for model files' warm-up."""
    from workbench.serving.registry import WarmupShapes  # lazy: the serving stack

    shapes, dtypes = opts.parse_shapes(args.shape)
    if dtypes:
        raise UserError(
            f"--shape {sorted(dtypes)[0]}: serve takes the model's own dtypes; drop ':DTYPE'"
        )
    return WarmupShapes(dims=parse_dims(args.dim), shapes=shapes)


def _serve_compiled(args: argparse.Namespace) -> int:
    """Replace this process with the compiled server (its PID, hence its memory, is the
    server's own); every flag it cannot honour is an error."""
    refused = {
        "--no-batcher (it has no batcher)": not args.no_batcher,
        "--grpc-port -1 (it has no gRPC)": args.grpc_port != -1,
        f"--host {LOOPBACK} (it listens on loopback only)": args.host != LOOPBACK,
        "one --model NAME=FILE.onnx": len(args.model) != 1,
        "no --weight, --default, --endpoint, --model-control, --allow-url-host": bool(
            args.weight or args.default or args.endpoint or args.model_control
            or args.allow_url_host
        ),
        "--instances 1": args.instances != 1,
        "no --dim or --shape (it serves fixed shapes only)": bool(args.dim or args.shape),
        "no --timeout-s or --max-inflight (it has no deadline and no admission bound)": (
            args.timeout_s != DEFAULT_TIMEOUT_S or args.max_inflight != DEFAULT_MAX_INFLIGHT
        ),
    }  # fmt: skip
    wrong = [need for need, bad in refused.items() if bad]
    if wrong:
        raise UserError(f"--front compiled needs {'; '.join(wrong)}")
    name, sep, source = args.model[0].partition("=")
    if not sep or ":" in name:
        raise UserError(f"--front compiled needs --model NAME=FILE.onnx, got {args.model[0]!r}")
    argv = server_argv(source, name, args.http_port, max_body_mb=args.max_body_mb)
    os.execv(argv[0], argv)
    return 0  # not reached


def _weights(items: list[str]) -> dict[tuple[str, str], float]:
    """`--weight NAME:VERSION=W` items by (name, version)."""
    weights = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            weights[_pair(key, "--weight")] = float(value)
        except ValueError:
            raise UserError(
                f"--weight needs NAME:VERSION=W with a number W, got {item!r}"
            ) from None
    return weights


def _settings(args: argparse.Namespace) -> ServeSettings:
    """The service's limits and policies, in bytes and seconds."""
    from workbench.serving.service import ServeSettings  # lazy: prometheus_client

    return ServeSettings(
        max_body_bytes=int(args.max_body_mb * 1024 * 1024),
        timeout_s=args.timeout_s,
        max_inflight=args.max_inflight,
        parse_workers=args.parse_workers,
        model_control=args.model_control,
        url_policy=UrlPolicy(
            tuple(h.lower() for h in args.allow_url_host),
            int(args.url_max_mb * 1024 * 1024),
            args.url_timeout_s,
        ),
        drain_s=args.drain_s,
    )


def _spec_source(value: str) -> str:
    """`NAME=model.yaml` (your own model, `workbench model init`) as `NAME=task:NAME`: its
    spec checked and registered, its ONNX artifact exported if missing."""
    name, sep, source = value.rpartition("=")
    if not sep or not source.endswith((".yaml", ".yml")):
        return value
    from workbench.usermodel.workflow import prepare  # lazy: numpy, yaml

    return f"{name}=task:{prepare(source).name}"
