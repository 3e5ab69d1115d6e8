"""Content moderation end to end through the HTTP front (issue 14): text + image requests
to `POST /api/v1/moderate` on `workbench serve`, sequential stages vs concurrent stages
(text and image branches in parallel, each model behind its own batcher).

For each mode: a server process (all five real models loaded), then
- at 1 QPS (LoadGen server scenario, Poisson arrivals, latency from the scheduled time):
  end-to-end p50/p99 (p99 needs >= 100 queries: `--one-qps-queries`, default 100, so
  about 100 s per mode), and the per-stage p50/p99 the server reports in each answer;
- the max QPS whose p99 stays under `--bound-ms` (default 200), found by
  `workbench.scenarios.peak.find_peak` (bounded probes, each a LoadGen server run).
Requests are real: held-out reviews and tweets with the bundled photographs and
generated scenes, sent as JSON with the image base64-encoded.

Run:  flock /tmp/wb-timing.lock .venv/bin/python benchmarks/moderation.py
          [--profile ci|quick] [--modes sequential,concurrent] [--bound-ms 200]
          [--one-qps-queries 100] [--probes 4] [--probe-queries 100] [--clients 4] [--out PATH]
The client (LoadGen + httpx) and the server share the host's cores (with 2 cores,
pinning them apart would leave the concurrent mode one core): say so with the numbers.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from workbench.scenarios.driver import ServedModel, passes, run_scenario  # noqa: E402
from workbench.scenarios.peak import find_peak  # noqa: E402
from workbench.scenarios.settings import for_profile  # noqa: E402
from workbench.serving.measure import Process  # noqa: E402


def bodies(n: int = 64) -> list[bytes]:
    """JSON bodies of text + image requests: real texts, photos and generated scenes."""
    from workbench.moderation.study import eval_images, eval_texts
    from workbench.vision.image_io import encode_image

    texts = eval_texts(n)
    images = [encode_image(img, "JPEG") for _, img in eval_images(12)]
    return [
        json.dumps(
            {"text": t, "image_base64": base64.b64encode(images[i % len(images)]).decode()}
        ).encode()
        for i, t in enumerate(texts)
    ]


def http_moderation(url: str, payloads: list[bytes], clients: int, stages: dict) -> ServedModel:
    """A ServedModel whose samples index `payloads`; each call POSTs one request and
    keeps the server's per-stage latencies in `stages`."""
    import httpx

    pool = [
        httpx.Client(
            base_url=url,
            timeout=60,
            transport=httpx.HTTPTransport(
                socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
            ),
        )
        for _ in range(clients)
    ]

    def runner(client: Any):
        def run(feed: dict[str, np.ndarray]) -> list[np.ndarray]:
            for k in feed["i"]:
                reply = client.post(
                    "/api/v1/moderate",
                    content=payloads[int(k) % len(payloads)],
                    headers={"content-type": "application/json"},
                )
                if reply.status_code != 200:
                    raise RuntimeError(f"HTTP {reply.status_code}: {reply.text[:200]}")
                for stage, ms in reply.json()["latency_ms"].items():
                    stages.setdefault(stage, []).append(ms)
            return [np.zeros(len(feed["i"]), np.float32)]

        return run

    return ServedModel(
        run_batches=[runner(c) for c in pool],
        samples=[{"i": np.array([k], np.int64)} for k in range(len(payloads))],
        labels={"front": "http", "endpoint": "/api/v1/moderate"},
        closers=[c.close for c in pool],
    )


def pct(values: list[float], q: float, need: int) -> float | None:
    return float(np.percentile(values, q)) if len(values) >= need else None


def stage_table(stages: dict[str, list[float]]) -> dict[str, Any]:
    return {
        k: {"n": len(v), "p50_ms": pct(v, 50, 2), "p99_ms": pct(v, 99, 100)}
        for k, v in stages.items()
    }


def bench_mode(mode: str, args: argparse.Namespace, payloads: list[bytes]) -> dict[str, Any]:
    argv = [
        sys.executable, "-m", "workbench.cli", "serve", "--model", "m=null",
        "--endpoint", f"moderate={mode}", "--http-port", "0", "--grpc-port", "0",
        "--log-level", "warning", "--timeout-s", "60",
    ]  # fmt: skip
    cores = set(os.sched_getaffinity(0))
    health = "http://127.0.0.1:{http_port}/v2/health/ready"
    with Process(argv, cores, health) as server:
        url = f"http://127.0.0.1:{server.info['http_port']}"
        stages: dict[str, list[float]] = {}
        served = http_moderation(url, payloads, args.clients, stages)
        try:
            for k in range(4):  # warm-up: first calls of each session
                served.run_batches[0]({"i": np.array([k])})
            stages.clear()
            n = args.one_qps_queries
            one = for_profile(
                args.profile, "server", target_qps=1.0, latency_bound_ms=args.bound_ms,
                min_query_count=n, min_duration_ms=n * 1000, max_duration_ms=n * 1000 + 60_000,
            )  # fmt: skip
            row = run_scenario(served, one, None)
            at_one = {
                "target_qps": 1.0,
                "queries": row["n_iterations"],
                "p50_ms": row["latency_ms_p50"],
                "p99_ms": row["latency_ms_p99"],
                "missing": row.get("missing_stats"),
                "failed_requests": row.get("failed_requests"),
                "stages_server_side": stage_table(stages),
            }
            print(json.dumps({"mode": mode, "at_1_qps": at_one}), flush=True)
            settings = for_profile(
                args.profile, "server", target_qps=1.0, latency_bound_ms=args.bound_ms
            )
            p50 = at_one["p50_ms"] or 500.0
            start = max(0.5, 0.8 * 1000.0 / p50)
            best, rows = find_peak(served, settings, None, max_probes=args.probes, start_qps=start)
            peak = {
                "bound_ms": args.bound_ms,
                "peak_qps": best,
                "probes": [
                    {
                        "target_qps": r["scenario_settings"]["target_qps"],
                        "achieved_qps": r["throughput_items_per_s"],
                        "p50_ms": r["latency_ms_p50"],
                        "p99_ms": r["latency_ms_p99"],
                        "queries": r["n_iterations"],
                        "passed": passes(
                            r, settings.with_(target_qps=r["scenario_settings"]["target_qps"])
                        ),
                    }
                    for r in rows
                ],
            }
            print(json.dumps({"mode": mode, "peak": peak}), flush=True)
        finally:
            served.close()
    return {"mode": mode, "at_1_qps": at_one, "peak": peak}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="quick", choices=["ci", "quick", "full"])
    parser.add_argument("--modes", default="sequential,concurrent")
    parser.add_argument("--bound-ms", type=float, default=200.0)
    parser.add_argument("--one-qps-queries", type=int, default=100)
    parser.add_argument("--probes", type=int, default=4)
    parser.add_argument(
        "--probe-queries", type=int, default=100, help="queries per peak probe (p99 needs 100)"
    )
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    payloads = bodies()
    began = time.time()
    results = [bench_mode(m, args, payloads) for m in args.modes.split(",")]
    report = {
        "benchmark": "moderation",
        "load_average": os.getloadavg(),
        "cores": len(os.sched_getaffinity(0)),
        "wall_s": time.time() - began,
        "results": results,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
