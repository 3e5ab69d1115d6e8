"""A client nobody here wrote: tritonclient's HTTP client (KServe v2) against the server,
with binary tensors (its default) and JSON tensors."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.serving_util import affine_onnx, make_service
from workbench.serving.server import ServerThread

httpclient = pytest.importorskip("tritonclient.http")


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    affine = str(affine_onnx(tmp_path_factory.mktemp("triton") / "affine.onnx"))
    service = make_service([("affine", affine, "1"), ("affine", affine, "2")])
    with ServerThread(service, grpc=False) as srv:
        triton = httpclient.InferenceServerClient(url=f"{srv.host}:{srv.http_port}")
        yield triton
        triton.close()


def test_health_and_metadata_through_tritonclient(client):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("affine", "2")
    assert client.get_server_metadata()["name"] == "workbench"
    meta = client.get_model_metadata("affine")
    assert meta["versions"] == ["1", "2"] and meta["inputs"][0]["shape"] == [-1, 4]


@pytest.mark.parametrize("binary", [True, False])
def test_infer_round_trip_through_tritonclient(client, binary):
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    tensor = httpclient.InferInput("x", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    wanted = httpclient.InferRequestedOutput("y", binary_data=binary)
    result = client.infer("affine", [tensor], model_version="2", outputs=[wanted], request_id="r1")
    np.testing.assert_array_equal(result.as_numpy("y"), 2 * x + 1)
    response = result.get_response()
    assert response["model_version"] == "2" and response["id"] == "r1"


def test_tritonclient_sees_the_server_errors(client):
    from tritonclient.utils import InferenceServerException

    tensor = httpclient.InferInput("x", [1, 4], "INT32")
    tensor.set_data_from_numpy(np.zeros((1, 4), np.int32))
    with pytest.raises(InferenceServerException, match="takes FP32"):
        client.infer("affine", [tensor])
    with pytest.raises(InferenceServerException, match="unknown model"):
        client.get_model_metadata("nope")
