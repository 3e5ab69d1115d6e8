"""A real `workbench serve` process (uvicorn and gRPC, signal handling included) whose
model takes a known time per batch: `python -m tests.support.serving_slow_server DELAY_S`."""

from __future__ import annotations

import sys

from tests.support.serving_util import make_service
from workbench.batching import BatcherConfig
from workbench.serving import logs
from workbench.serving.server import serve
from workbench.serving.service import ServeSettings

if __name__ == "__main__":
    logs.setup("info")
    service = make_service(
        [("slow", "slow", "1")],
        batcher=BatcherConfig(max_batch_size=1, max_queue_delay_ms=0),
        settings=ServeSettings(drain_s=10.0),
        delay_s=float(sys.argv[1]),
    )
    sys.exit(serve(service, http_port=0, grpc_port=0))
