"""The moderation pipeline on its real models and `POST /api/v1/moderate` on the serving
front: real decisions, sequential = concurrent = batched, the bad-input answers, and a
failing stage named in the answer.

Four stages are the real ones (profanity, NER, Open-NSFW, the detector; NER and the
detector exported once into this module's workspace); the sentiment stage, which the
default policy only reports, is a stand-in here to spare a third ~30 s MiniLM export
(the moderation notebook runs it for real)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("onnxruntime")
pytest.importorskip("profanity_check")
httpx = pytest.importorskip("httpx")

pytestmark = pytest.mark.slow

OFFENSIVE = "You are a fucking idiot, John Smith"
CLEAN = "Lovely soft sweater, fits true to size and the colour is great."


def png(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG")
    return buffer.getvalue()


class StandInSentiment:
    name, branch, precision, path = "sentiment", "text", "fp32", "stand-in"

    def run(self, items: Any) -> list[dict[str, Any]]:
        probs = {"negative": 0.2, "neutral": 0.3, "positive": 0.5}
        return [{"label": "positive", "probabilities": probs, "truncated": False} for _ in items]

    def describe(self) -> dict[str, Any]:
        return {"stage": self.name, "precision": self.precision, "artifact": self.path}


def real_stages_but_sentiment(variant: Any, threads: int | None = None) -> dict[str, Any]:
    from workbench.moderation.stages import STAGE_CLASSES

    stages = {
        n: c(variant.precision(n), threads or 1)
        for n, c in STAGE_CLASSES.items()
        if n != "sentiment"
    }
    return {**stages, "sentiment": StandInSentiment()}


@pytest.fixture(scope="module")
def server(module_workspace: Path) -> Iterator[Any]:
    from workbench.moderation import pipeline
    from workbench.serving.endpoints import EndpointConfig
    from workbench.serving.server import ServerThread, build_service
    from workbench.serving.service import ServeSettings

    service = build_service([], None, ServeSettings(timeout_s=60.0))
    config = EndpointConfig("moderate", "sequential", {"threads": "1"})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(pipeline, "build_stages", real_stages_but_sentiment)
        srv = ServerThread(service, [config], grpc=False)
    with srv:
        app = srv.server.config.app
        while not hasattr(app, "state"):  # under the front's ASGI middlewares (admission, body)
            app = app.app
        srv.moderator = app.state.moderators["moderate"]
        yield srv


def post(srv: Any, **kwargs: Any) -> httpx.Response:
    return httpx.post(f"{srv.url}/api/v1/moderate", timeout=60.0, **kwargs)


def test_real_decisions_over_http(server: Any) -> None:
    from workbench.vision.photos import photo_bytes

    bad = post(server, json={"text": OFFENSIVE})
    assert bad.status_code == 200, bad.text
    body = bad.json()
    assert not body["safe"] and body["violations"] == ["offensive_language"]
    assert body["scores"]["profanity"] > 0.9 and body["request"] == "text"
    assert any(
        s["text"] == "John Smith" and s["finding"] == "person_name" for s in body["sensitive_info"]
    )
    assert body["policy"]["version"] == "1" and "total" in body["latency_ms"]
    image = base64.b64encode(photo_bytes("coffee")).decode()
    both = post(server, json={"text": CLEAN, "image_base64": image}).json()
    assert both["safe"] and both["status"] == "complete" and both["request"] == "text+image"
    assert both["scores"]["nsfw"] < 0.2 and set(both["latency_ms"]) >= {
        "nsfw",
        "objects",
        "profanity",
    }
    multipart = post(
        server, data={"text": CLEAN}, files={"image": ("c.png", photo_bytes("coffee"))}
    )
    assert multipart.json()["scores"] == both["scores"]
    grey = post(server, files={"image": ("g.png", png(np.full((64, 64), 90, np.uint8)))}).json()
    assert grey["request"] == "image" and "converted to RGB" in grey["image_note"]


@pytest.mark.parametrize(
    ("kwargs", "status", "needle"),
    [
        ({"json": {}}, 400, "nothing to moderate"),
        ({"json": {"text": "   "}}, 400, "nothing to moderate"),
        ({"json": {"text": "x" * 5001}}, 400, "over the cap"),
        ({"json": {"image_base64": "***"}}, 400, "not valid base64"),
        (
            {
                "json": {
                    "image_base64": base64.b64encode(png(np.zeros((1, 1, 3), np.uint8))).decode()
                }
            },
            400,
            "1x1",
        ),
        (
            {"json": {"image_base64": base64.b64encode(b"not an image").decode()}},
            400,
            "not a readable",
        ),
        ({"json": {"image_url": "http://127.0.0.1:1/x.png"}}, 403, "by URL is off"),
        ({"json": ["text"]}, 400, "JSON object"),
        (
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            400,
            "not valid JSON",
        ),
        ({"content": b"hello", "headers": {"content-type": "text/plain"}}, 415, "content-type"),
        ({"files": {"text": ("t.txt", b"hi")}}, 400, "plain field"),
    ],
)
def test_bad_input_answers_4xx_and_the_server_keeps_serving(
    server: Any, kwargs: dict, status: int, needle: str
) -> None:
    answer = post(server, **kwargs)
    assert answer.status_code == status, answer.text
    assert needle in answer.json()["error"]
    assert post(server, json={"text": CLEAN}).status_code == 200


def test_a_failing_stage_is_named_over_http(server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    stage = server.moderator.stages["sensitive"]

    def explode(items: Any) -> Any:
        raise RuntimeError("NER session lost")

    monkeypatch.setattr(stage, "run", explode)
    body = post(server, json={"text": CLEAN}).json()
    assert body["safe"] is False and body["status"] == "failed"
    assert body["failed_stages"] == [
        {"stage": "sensitive", "error": "RuntimeError: NER session lost"}
    ]
    assert "profanity" in body["scores"]


def test_sequential_concurrent_and_batched_agree(server: Any) -> None:
    from workbench.moderation.pipeline import Moderator
    from workbench.moderation.request import make_request
    from workbench.vision.photos import photo_bytes

    stages = server.moderator.stages
    requests = [
        make_request(OFFENSIVE, None),
        make_request(None, photo_bytes("astronaut")),
        make_request(CLEAN, photo_bytes("chelsea")),
    ]
    sequential = [server.moderator.moderate(r) for r in requests]
    with Moderator("concurrent", stages=stages) as concurrent:
        parallel = [concurrent.moderate(r) for r in requests]
    batched = server.moderator.moderate_batch(requests)
    for a, b, c in zip(sequential, parallel, batched, strict=True):
        assert a["violations"] == b["violations"] == c["violations"]
        assert a["safe"] == b["safe"] == c["safe"]
        for key, value in a["scores"].items():
            assert b["scores"][key] == pytest.approx(value, abs=1e-5)
            assert c["scores"][key] == pytest.approx(value, abs=1e-4)
