"""A counter scans a phone screen, not a perfect PNG: the real offline code, distorted as a camera or
a screenshot would distort it, still verifies end to end through the SDK. Reports the QR version."""

from __future__ import annotations

import io
import random
from collections.abc import Callable

import pytest
from PIL import Image, ImageFilter

from credentials import qr

QR_CLAIMS = ("uscc", "name", "legal_representative")


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def _scaled(image: Image.Image) -> Image.Image:
    # 3 pixels per module: a small code on a low-resolution camera frame.
    side = int(image.width * 3 / 8)
    return image.resize((side, side), Image.BILINEAR)


def _rotated(image: Image.Image) -> Image.Image:
    return image.convert("L").rotate(11, expand=True, fillcolor=255, resample=Image.BICUBIC)


def _noisy(image: Image.Image) -> Image.Image:
    rng = random.Random(5)
    grey = image.convert("L")
    pixels = grey.load()
    for _ in range(grey.width * grey.height // 20):  # 5% salt and pepper
        pixels[rng.randrange(grey.width), rng.randrange(grey.height)] = rng.choice((0, 255))
    return grey.filter(ImageFilter.GaussianBlur(1))


def _jpeg_screenshot(image: Image.Image) -> Image.Image:
    screen = Image.new("RGB", (1080, 2340), (245, 245, 240))
    code = image.convert("RGB").resize((900, 900), Image.NEAREST)
    screen.paste(code, (90, 700))
    out = io.BytesIO()
    screen.save(out, format="JPEG", quality=40)
    return Image.open(io.BytesIO(out.getvalue()))


DISTORTIONS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "scaled to 3 px per module": _scaled,
    "rotated 11 degrees": _rotated,
    "5% noise and blur": _noisy,
    "phone screenshot as JPEG q40": _jpeg_screenshot,
}


@pytest.mark.parametrize("name", DISTORTIONS)
def test_distorted_offline_code_verifies(kit, name: str, record_property) -> None:
    text = kit.el1(disclose=QR_CLAIMS)
    info = qr.qr_info(text)
    record_property("qr_version", info.version)
    record_property("qr_modules", info.modules)
    print(f"{name}: QR version {info.version}, {info.modules}x{info.modules} modules, {info.chars} chars")
    image = Image.open(io.BytesIO(qr.render_png(text, scale=8)))
    result = kit.verifier().verify(_png(DISTORTIONS[name](image)))
    assert result.status == "valid" and result.holder_bound
    assert set(result.claims) == set(QR_CLAIMS)
    assert info.version <= 20
