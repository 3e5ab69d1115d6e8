"""The gRPC front: the v2 GRPCInferenceService through stubs generated from the
committed .proto, its status codes for bad input, and the stubs matching a fresh
generation (grpcio-tools against the venv's protobuf)."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from tests.support.serving_util import affine_onnx, make_service
from workbench.batching import BatcherConfig
from workbench.serving.proto import open_inference_grpc_pb2 as pb
from workbench.serving.proto import open_inference_grpc_pb2_grpc as pb_grpc
from workbench.serving.proto.generate import HERE, generated_sources
from workbench.serving.server import ServerThread
from workbench.serving.service import ServeSettings


@pytest.fixture(scope="module")
def stub(tmp_path_factory):
    affine = str(affine_onnx(tmp_path_factory.mktemp("grpc") / "affine.onnx"))
    service = make_service(
        [("affine", affine, "1"), ("affine", affine, "2")],
        settings=ServeSettings(max_body_bytes=64 * 1024),
    )
    with ServerThread(service) as srv:
        channel = grpc.insecure_channel(f"{srv.host}:{srv.grpc_port}")
        yield pb_grpc.GRPCInferenceServiceStub(channel)
        channel.close()


def _request(x: np.ndarray, version: str = "", raw: bool = True) -> pb.ModelInferRequest:
    req = pb.ModelInferRequest(model_name="affine", model_version=version, id="7")
    tensor = req.inputs.add(name="x", datatype="FP32", shape=list(x.shape))
    if raw:
        req.raw_input_contents.append(x.astype(np.float32).tobytes())
    else:
        tensor.contents.fp32_contents.extend(x.reshape(-1).tolist())
    return req


def _output(reply: pb.ModelInferResponse) -> np.ndarray:
    out = reply.outputs[0]
    return np.frombuffer(reply.raw_output_contents[0], np.float32).reshape(list(out.shape))


def test_committed_stubs_match_a_fresh_generation():
    for name, text in generated_sources().items():
        assert (HERE / name).read_text() == text, (
            f"{name} is stale: run workbench.serving.proto.generate"
        )


def test_health_and_metadata(stub):
    assert stub.ServerLive(pb.ServerLiveRequest()).live
    assert stub.ServerReady(pb.ServerReadyRequest()).ready
    assert stub.ModelReady(pb.ModelReadyRequest(name="affine", version="2")).ready
    meta = stub.ServerMetadata(pb.ServerMetadataRequest())
    assert meta.name == "workbench" and "binary_tensor_data" in meta.extensions
    model = stub.ModelMetadata(pb.ModelMetadataRequest(name="affine"))
    assert list(model.versions) == ["1", "2"]
    assert [(t.name, t.datatype, list(t.shape)) for t in model.inputs] == [("x", "FP32", [-1, 4])]


@pytest.mark.parametrize("raw", [True, False])
def test_model_infer_raw_and_typed_contents(stub, raw):
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    reply = stub.ModelInfer(_request(x, "2", raw=raw))
    assert reply.model_name == "affine" and reply.model_version == "2" and reply.id == "7"
    np.testing.assert_array_equal(_output(reply), 2 * x + 1)


@pytest.mark.parametrize(
    ("mutate", "code", "words"),
    [
        (lambda r: setattr(r, "model_name", "nope"), grpc.StatusCode.NOT_FOUND, "unknown model"),
        (lambda r: setattr(r, "model_version", "9"), grpc.StatusCode.NOT_FOUND, "no version"),
        (
            lambda r: r.inputs[0].shape.__setitem__(1, 3),
            grpc.StatusCode.INVALID_ARGUMENT,
            "bytes of raw data",
        ),
        (
            lambda r: setattr(r.inputs[0], "datatype", "INT32"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "takes FP32",
        ),
        (
            lambda r: setattr(r.inputs[0], "datatype", "FP99"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "not a v2 datatype",
        ),
        (
            lambda r: r.raw_input_contents.append(b"x"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "one per input",
        ),
    ],
)
def test_bad_requests_get_a_status_naming_the_problem(stub, mutate, code, words):
    req = _request(np.zeros((1, 4), np.float32))
    mutate(req)
    with pytest.raises(grpc.RpcError) as err:
        stub.ModelInfer(req)
    assert err.value.code() == code and words in err.value.details()
    assert stub.ModelInfer(_request(np.ones((1, 4), np.float32))).outputs  # still serving


def test_malformed_protobuf_is_refused_and_the_server_keeps_serving(tmp_path):
    service = make_service([("m", "null", "1")], settings=ServeSettings(max_body_bytes=4096))
    with ServerThread(service) as srv, grpc.insecure_channel(f"{srv.host}:{srv.grpc_port}") as ch:
        untyped = ch.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        with pytest.raises(grpc.RpcError) as err:
            untyped(b"\xff\xff\xff\xff garbage", timeout=5)
        assert err.value.code() != grpc.StatusCode.OK and err.value.details()
        typed = pb_grpc.GRPCInferenceServiceStub(ch)
        big = pb.ModelInferRequest(model_name="m")
        big.inputs.add(name="x", datatype="FP32", shape=[1, 1])
        big.raw_input_contents.append(b"\0" * 8192)
        with pytest.raises(grpc.RpcError) as err:
            typed.ModelInfer(big, timeout=5)
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        ok = pb.ModelInferRequest(model_name="m")
        ok.inputs.add(name="x", datatype="FP32", shape=[1, 1])
        ok.raw_input_contents.append(np.ones(1, np.float32).tobytes())
        assert typed.ModelInfer(ok, timeout=5).model_version == "1"


def test_overload_is_resource_exhausted():
    slow = BatcherConfig(max_batch_size=1, max_queue_delay_ms=0, max_queue_size=1)
    service = make_service([("slow", "slow", "1")], batcher=slow, delay_s=0.2)
    with ServerThread(service) as srv, grpc.insecure_channel(f"{srv.host}:{srv.grpc_port}") as ch:
        typed = pb_grpc.GRPCInferenceServiceStub(ch)
        req = pb.ModelInferRequest(model_name="slow")
        req.inputs.add(name="x", datatype="FP32", shape=[1, 4])
        req.raw_input_contents.append(np.zeros(4, np.float32).tobytes())
        calls = [typed.ModelInfer.future(req, timeout=10) for _ in range(6)]
        codes = []
        for call in calls:
            try:
                call.result()
                codes.append(grpc.StatusCode.OK)
            except grpc.RpcError as exc:
                codes.append(exc.code())
        assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes and grpc.StatusCode.OK in codes, codes
        assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
