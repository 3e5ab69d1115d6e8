"""Task endpoints (/api/v1/classify) with the image_classification task's real pre- and
post-processing, and the image-URL rules against a loopback HTTP server."""

from __future__ import annotations

import base64
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import numpy as np
import pytest

from tests.support.serving_util import detector_onnx, imagenet_head_onnx, make_service
from workbench.errors import UserError
from workbench.serving.endpoints import EndpointConfig
from workbench.serving.server import ServerThread
from workbench.serving.service import ServeSettings
from workbench.serving.urlfetch import UrlPolicy
from workbench.vision.image_io import encode_image

PNG = encode_image(np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8))
CAP = 64 * 1024


class Pictures(BaseHTTPRequestHandler):
    """The loopback image host: good, wrong, huge, slow and redirecting answers."""

    def log_message(self, *args) -> None:
        pass

    def handle(self) -> None:
        try:
            super().handle()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server under test gave up on a slow or huge answer: expected

    def _send(self, code: int, kind: str, body: bytes, length: bool = True) -> None:
        self.send_response(code)
        self.send_header("Content-Type", kind)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        port = self.server.server_address[1]
        if self.path == "/ok.png":
            self._send(200, "image/png", PNG)
        elif self.path == "/page":
            self._send(200, "text/html", b"<html>not an image</html>")
        elif self.path == "/fake.png":
            self._send(200, "image/png", b"these bytes are not a PNG")
        elif self.path == "/huge.png":
            self._send(200, "image/png", b"\0" * (CAP + 1))
        elif self.path == "/drip.png":  # no length header: the cap applies while reading
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            for _ in range(CAP // 4096 + 4):
                self.wfile.write(b"\0" * 4096)
        elif self.path == "/slow.png":
            time.sleep(1.5)
            self._send(200, "image/png", PNG)
        elif self.path == "/same":
            self.send_response(302)
            self.send_header("Location", "/ok.png")
            self.end_headers()
        elif self.path == "/other":
            self.send_response(302)
            self.send_header("Location", f"http://localhost:{port}/ok.png")
            self.end_headers()
        else:
            self._send(404, "text/plain", b"no")


@pytest.fixture(scope="module")
def pictures():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Pictures)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


@pytest.fixture(scope="module")
def head(tmp_path_factory) -> str:
    return str(imagenet_head_onnx(tmp_path_factory.mktemp("task") / "head.onnx"))


def _server(head: str, hosts: tuple[str, ...] = ()) -> ServerThread:
    policy = UrlPolicy(allowed_hosts=hosts, max_bytes=CAP, timeout_s=0.5)
    service = make_service([("head", head, "1")], settings=ServeSettings(url_policy=policy))
    return ServerThread(service, [EndpointConfig.parse("classify=head")], grpc=False)


@pytest.fixture(scope="module")
def plain(head):
    with _server(head) as srv:
        yield srv


@pytest.fixture(scope="module")
def fetching(head):
    with _server(head, ("127.0.0.1", "localhost")) as srv:
        yield srv


def _check_top5(reply: httpx.Response) -> None:
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["model"] == "head" and body["version"] == "1"
    probs = [p["probability"] for p in body["predictions"]]
    assert len(probs) == 5 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1
    assert all(isinstance(p["label"], str) and p["label"] for p in body["predictions"])


def test_classify_takes_multipart_and_base64(plain):
    url = plain.url + "/api/v1/classify"
    _check_top5(httpx.post(url, files={"image": ("x.png", PNG, "image/png")}, timeout=30))
    _check_top5(httpx.post(url, json={"image_base64": base64.b64encode(PNG).decode()}, timeout=30))
    same = httpx.post(url, files={"file": ("x.png", PNG, "image/png")}, timeout=30).json()
    first = httpx.post(url, files={"image": ("x.png", PNG, "image/png")}, timeout=30).json()
    assert same["predictions"] == first["predictions"]


@pytest.mark.parametrize(
    ("kwargs", "status", "words"),
    [
        (
            {"files": {"image": ("x.txt", b"hello, not an image", "text/plain")}},
            400,
            "not a readable image",
        ),
        ({"files": {"other": ("x.png", PNG, "image/png")}}, 400, "no file field 'image'"),
        ({"json": {"image_base64": "@@@"}}, 400, "not valid base64"),
        ({"json": {"nothing": 1}}, 400, "expected image_base64"),
        (
            {"content": b"raw", "headers": {"content-type": "text/plain"}},
            415,
            "multipart/form-data",
        ),
        ({"json": {"image_url": "http://127.0.0.1/x.png"}}, 403, "off on this server"),
    ],
)
def test_classify_bad_input(plain, kwargs, status, words):
    reply = httpx.post(plain.url + "/api/v1/classify", timeout=30, **kwargs)
    assert reply.status_code == status, reply.text
    assert words in reply.json()["error"]
    _check_top5(
        httpx.post(plain.url + "/api/v1/classify", files={"image": ("x.png", PNG)}, timeout=30)
    )


def test_classify_fetches_an_allowed_url(fetching, pictures):
    url = fetching.url + "/api/v1/classify"
    _check_top5(httpx.post(url, json={"image_url": pictures + "/ok.png"}, timeout=30))
    _check_top5(httpx.post(url, json={"image_url": pictures + "/same"}, timeout=30))


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("ftp://127.0.0.1/ok.png", 403, "scheme 'ftp'"),
        ("http://10.1.2.3/ok.png", 403, "not on this server's allow-list"),
        ("/other", 403, "redirects to another host"),
        ("/page", 400, "content-type 'text/html'"),
        ("/fake.png", 400, "not a readable image"),
        ("/huge.png", 413, "cap"),
        ("/drip.png", 413, "cap"),
        ("/slow.png", 504, "did not answer within 0.5 s"),
        ("/missing.png", 502, "HTTP 404"),
    ],
)
def test_url_fetch_rules(fetching, pictures, path, status, words):
    target = path if "://" in path else pictures + path
    reply = httpx.post(fetching.url + "/api/v1/classify", json={"image_url": target}, timeout=30)
    assert reply.status_code == status, reply.text
    assert words in reply.json()["error"]
    assert httpx.get(fetching.url + "/v2/health/ready").status_code == 200


def test_endpoint_config_parsing_and_unknown_endpoints(head):
    config = EndpointConfig.parse("classify=head,task_model=efficientnet_lite0,top_k=3")
    assert config == EndpointConfig(
        "classify", "head", {"task_model": "efficientnet_lite0", "top_k": "3"}
    )
    for bad in ("classify", "classify=", "classify=a,b"):
        with pytest.raises(UserError):
            EndpointConfig.parse(bad)
    service = make_service([("m", "null", "1")])
    with pytest.raises(UserError, match="unknown endpoint 'nope'"):
        ServerThread(service, [EndpointConfig("nope", "m")], grpc=False)
    service.models.close()


def test_detect_letterboxes_decodes_and_maps_boxes_back(tmp_path):
    model = str(detector_onnx(tmp_path / "det.onnx"))
    service = make_service([("det", model, "1")])
    config = EndpointConfig.parse("detect=det,task_model=yolov8n_320")
    with ServerThread(service, [config], grpc=False) as srv:
        reply = httpx.post(srv.url + "/api/v1/detect", files={"image": ("x.png", PNG)}, timeout=30)
        assert reply.status_code == 200, reply.text
        found = reply.json()["detections"]
        assert len(found) == 1 and found[0]["class_id"] == 0
        assert found[0]["score"] == pytest.approx(0.9)
        # a centred box a quarter of the 320 input, mapped back into the 60x40 image
        x0, y0, x1, y1 = found[0]["box_xyxy"]
        assert (x0 + x1) / 2 == pytest.approx(30, abs=0.5) and (y0 + y1) / 2 == pytest.approx(
            20, abs=0.5
        )
        assert x1 - x0 == pytest.approx(15, abs=0.5)
        bad = httpx.post(
            srv.url + "/api/v1/detect", files={"image": ("x.png", b"GIF89a...")}, timeout=30
        )
        assert bad.status_code == 400 and "not a readable image" in bad.json()["error"]
