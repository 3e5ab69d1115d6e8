"""A moderation request checked before any model runs: text and/or image, each within the
policy's caps, the image decoded to RGB. Every failure is a UserError that says what is
wrong and what to do (the HTTP front turns it into a 4xx)."""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from workbench.errors import UserError
from workbench.moderation.policy import DEFAULT_POLICY, Policy
from workbench.vision.image_io import as_rgb


@dataclass(frozen=True)
class ModerationRequest:
    """What one request asks to moderate: text, an RGB image, or both."""

    text: str | None = None
    image: np.ndarray | None = None  # HxWx3 uint8 RGB
    image_note: str | None = None  # e.g. "RGBA: alpha dropped", "grey: replicated to RGB"

    @property
    def kind(self) -> str:
        return {(True, True): "text+image", (True, False): "text", (False, True): "image"}[
            (self.text is not None, self.image is not None)
        ]


def check_text(text: Any, policy: Policy) -> str | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise UserError(f"'text' must be a string, got {type(text).__name__}")
    if len(text) > policy.max_text_chars:
        raise UserError(
            f"'text' is {len(text):,} characters, over the cap of {policy.max_text_chars:,}: "
            "split it into several requests"
        )
    return text if text.strip() else None


def decode_b64(data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise UserError(
            "'image_base64' is not valid base64: send the file's bytes base64-encoded"
        ) from None


def check_image(data: bytes | None, policy: Policy) -> tuple[np.ndarray | None, str | None]:
    """Encoded bytes -> RGB array and a note on any conversion. Too small (nothing to
    see), too large (refused before the pixels are decoded) and unreadable images fail."""
    if data is None:
        return None, None
    if not data:
        raise UserError("the image is empty (0 bytes): send an encoded PNG or JPEG")
    try:
        with Image.open(io.BytesIO(data)) as img:
            w, h, mode = img.width, img.height, img.mode
            if w * h > policy.max_image_pixels:
                raise UserError(
                    f"the image is {w}x{h} = {w * h:,} pixels, over the cap of "
                    f"{policy.max_image_pixels:,}: downscale it before sending"
                )
            if min(w, h) < policy.min_image_side:
                raise UserError(
                    f"the image is {w}x{h} pixels: below {policy.min_image_side} px on a side "
                    "there is nothing to moderate; send the original image"
                )
            img.load()
            rgb = as_rgb(img, name="image")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, SyntaxError) as exc:
        raise UserError(
            f"the image is not a readable PNG/JPEG/... ({type(exc).__name__})"
        ) from None
    note = None
    if mode in ("L", "LA", "I", "I;16", "1", "P"):
        note = f"mode {mode}: converted to RGB"
    if mode in ("RGBA", "LA", "PA"):
        note = f"mode {mode}: alpha dropped, colour channels moderated as they are"
    return rgb, note


def make_request(
    text: Any = None, image: bytes | None = None, policy: Policy = DEFAULT_POLICY
) -> ModerationRequest:
    """A checked request; a UserError when there is nothing to moderate or an input is bad."""
    checked = check_text(text, policy)
    rgb, note = check_image(image, policy)
    if checked is None and rgb is None:
        raise UserError(
            "nothing to moderate: send non-empty 'text', an image ('image_base64' or a file), "
            "or both"
        )
    return ModerationRequest(checked, rgb, note)
