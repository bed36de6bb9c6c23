"""Reading EL1 QR codes back from images (credentials/qr.py decode_image, zxing-cpp): a realistic
presentation rendered, then scaled, rotated, noised, blurred, JPEG-compressed and put in a screenshot.

Each test prints what it measured (QR version, modules, pixels per module); run with ``-rA`` or
``-s`` to see it, or read the junit properties.
"""

from __future__ import annotations

import hashlib
import io
import random
import subprocess
import sys
from pathlib import Path
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from credentials import jws, qr
from credentials.errors import CredentialError
from keys.jwk import b64u_encode
from keys.signer import SoftwareSigner

BORDER = 4


def _presentation(seed: int = 2024) -> str:
    """A business licence SD-JWT+KB as the QR shows it: uscc, name and legal representative in the
    signed payload, one digest for the ``registration`` object (schemas/types/business-licence),
    whose eight members are each selectively disclosable (RFC 9901 s4.2.6); two of them disclosed
    (entity type, domicile), so three Disclosures travel; key binding.

    Ed25519 keys from ``seed``: EdDSA signatures are deterministic, so the QR code is the same on
    every run and a threshold below cannot pass on one run and fail on the next.
    """
    rnd = random.Random(seed)
    issuer = SoftwareSigner(Ed25519PrivateKey.from_private_bytes(rnd.randbytes(32)))
    holder = SoftwareSigner(Ed25519PrivateKey.from_private_bytes(rnd.randbytes(32)))
    registration = {
        "entity_type": "有限责任公司（自然人投资或控股）",
        "registered_capital": {"amount": "100", "currency": "CNY"},
        "establishment_date": "2019-03-15",
        "business_term": {"from": "2019-03-15", "to": None, "long_term": True},
        "business_scope": "一般项目：技术服务、技术开发、技术咨询；软件开发。",
        "domicile": "上海市浦东新区张江路100号5幢301室",
        "registration_authority": "上海市浦东新区市场监督管理局",
        "issue_date": "2024-06-01",
    }

    def disclosure(name: str, value: object) -> str:
        return b64u_encode(jws.dumps([b64u_encode(rnd.randbytes(16)), name, value]))

    def sd_digest(d: str) -> str:
        return b64u_encode(hashlib.sha256(d.encode()).digest())

    members = {k: disclosure(k, v) for k, v in registration.items()}
    parent = disclosure("registration", {"_sd": sorted(sd_digest(d) for d in members.values())})
    payload = {
        "iss": "https://scjg.sh.gov.cn/elicence",
        "iat": 1767225600,
        "exp": 1798761600,
        "vct": "https://elicence.cn/vct/business-licence",
        "status": {"status_list": {"idx": 48213, "uri": "https://scjg.sh.gov.cn/elicence/status/7"}},
        "uscc": "91310000MA1FL7JX8Q",
        "name": "上海示例信息科技有限公司",
        "legal_representative": "张三",
        "_sd": [sd_digest(parent)],
        "_sd_alg": "sha-256",
        "cnf": {"jwk": dict(holder.public_jwk)},
    }
    sd_jwt = jws.sign(payload, issuer, typ="dc+sd-jwt") + "~"
    sd_jwt += "".join(d + "~" for d in (members["entity_type"], members["domicile"], parent))
    kb = {"iat": 1767229200, "aud": "https://window.example.gov.cn", "nonce": b64u_encode(rnd.randbytes(16)),
          "sd_hash": b64u_encode(hashlib.sha256(sd_jwt.encode()).digest())}
    return sd_jwt + jws.sign(kb, holder, typ="kb+jwt", include_kid=False)


PRESENTATION = _presentation()
TEXT = qr.encode_payload(PRESENTATION)
INFO = qr.qr_info(TEXT)
SIDE = INFO.modules + 2 * BORDER  # modules across the image, quiet zone included


def _report(record_property: Callable[[str, object], None], **values: object) -> None:
    values = {"qr_version": INFO.version, "qr_modules": INFO.modules, **values}
    for key, value in values.items():
        record_property(key, value)
    print("QR " + ", ".join(f"{k}={v}" for k, v in values.items()))


def _rendered(scale: int) -> Image.Image:
    return Image.open(io.BytesIO(qr.render_png(TEXT, scale=scale, border=BORDER))).convert("L")


def _decodes(image: object) -> bool:
    try:
        return qr.decode_image(image) == TEXT  # type: ignore[arg-type]
    except CredentialError:
        return False


def _gaussian_noise(img: Image.Image, sigma: float, seed: int) -> Image.Image:
    rnd = random.Random(seed)
    noise = bytes(min(255, max(0, round(128 + rnd.gauss(0, sigma)))) for _ in range(img.width * img.height))
    return ImageChops.add(img, Image.frombytes("L", img.size, noise), 1.0, -128)


def _salt_and_pepper(img: Image.Image, fraction: float, seed: int) -> Image.Image:
    rnd = random.Random(seed)
    out = img.copy()
    pixels = out.load()
    for _ in range(int(img.width * img.height * fraction)):
        pixels[rnd.randrange(img.width), rnd.randrange(img.height)] = rnd.choice((0, 255))
    return out


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def test_presentation_is_realistic_and_packed() -> None:
    assert 1500 <= len(PRESENTATION) <= 2200, len(PRESENTATION)
    assert PRESENTATION == _presentation()  # deterministic
    assert PRESENTATION.count("~") == 4
    assert qr.decode_payload(TEXT) == PRESENTATION


def test_png_decodes_back_exactly(record_property) -> None:
    png = qr.render_png(TEXT, scale=4, border=BORDER)
    assert qr.decode_image(png) == TEXT
    assert qr.decode_payload(qr.decode_image(png)) == PRESENTATION
    _report(record_property, text_chars=len(PRESENTATION), qr_chars=INFO.chars, qr_data_bytes=INFO.bytes,
            png_bytes=len(png))


def test_scaled_down_to_60_percent_decodes(record_property) -> None:
    img = _rendered(5)
    small = img.resize((round(img.width * 0.6), round(img.height * 0.6)), Image.Resampling.LANCZOS)
    assert qr.decode_image(small) == TEXT
    _report(record_property, px_per_module=round(small.width / SIDE, 2))


def test_smallest_module_size_that_decodes(record_property) -> None:
    """Shrink a sharp rendering step by step; the smallest size above which every step decodes."""
    sharp = _rendered(10)
    steps = [3.0, 2.5, 2.2, 2.0, 1.8, 1.6, 1.5, 1.4, 1.3, 1.2, 1.1, 1.0]
    results = {}
    for ppm in steps:
        side = round(SIDE * ppm)
        results[ppm] = _decodes(sharp.resize((side, side), Image.Resampling.LANCZOS))
    reliable = steps[0]
    for ppm in steps:
        if not results[ppm]:
            break
        reliable = ppm
    _report(record_property, smallest_reliable_px_per_module=reliable,
            decodes_at={p: r for p, r in results.items()})
    assert reliable <= 2.0


@pytest.mark.parametrize("degrees", [7, 30, 90, 180])
def test_rotated_decodes(degrees: int, record_property) -> None:
    img = _rendered(4).rotate(degrees, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
    assert qr.decode_image(img) == TEXT
    _report(record_property, rotation=degrees, px_per_module=4)


def test_gaussian_noise_decodes(record_property) -> None:
    assert _decodes(_gaussian_noise(_rendered(5), sigma=50, seed=1))
    _report(record_property, gaussian_sigma=50, px_per_module=5)


def test_salt_and_pepper_noise_decodes(record_property) -> None:
    assert _decodes(_salt_and_pepper(_rendered(5), fraction=0.05, seed=2))
    _report(record_property, salt_and_pepper_fraction=0.05, px_per_module=5)


@pytest.mark.parametrize("radius", [1.0, 2.0])
def test_blurred_decodes(radius: float, record_property) -> None:
    assert _decodes(_rendered(5).filter(ImageFilter.GaussianBlur(radius)))
    _report(record_property, blur_radius=radius, px_per_module=5)


@pytest.mark.parametrize("quality", [50, 20])
def test_jpeg_decodes(quality: int, record_property) -> None:
    data = _jpeg(_rendered(4), quality)
    assert _decodes(data)
    _report(record_property, jpeg_quality=quality, jpeg_bytes=len(data), px_per_module=4)


def test_photo_like_combination_decodes(record_property) -> None:
    """A phone photo of a screen, roughly: 5 px/module, tilted, soft, grainy, JPEG."""
    img = _rendered(5).rotate(7, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=235)
    img = _gaussian_noise(img.filter(ImageFilter.GaussianBlur(1.0)), sigma=20, seed=3)
    assert _decodes(_jpeg(img, 60))
    _report(record_property, px_per_module=5, rotation=7, blur_radius=1.0, gaussian_sigma=20, jpeg_quality=60)


def _screenshot(*codes: Image.Image, mode: str = "RGB") -> Image.Image:
    """A 1080x2340 phone screenshot: a title bar, text around, the codes pasted in a card."""
    background = (245, 246, 248, 255) if mode == "RGBA" else (245, 246, 248)
    shot = Image.new(mode, (1080, 2340), background)
    draw = ImageDraw.Draw(shot)
    draw.rectangle((0, 0, 1080, 180), fill=(183, 28, 28))
    draw.text((40, 70), "eLicence  Business licence  show code", fill=(255, 255, 255))
    draw.text((60, 240), "Shanghai Example Information Technology Co., Ltd.", fill=(30, 30, 30))
    draw.text((60, 290), "USCC 91310000MA1FL7JX8Q   valid for 60 s", fill=(90, 90, 90))
    y = 380
    for code in codes:
        draw.rounded_rectangle((70, y - 30, 1010, y + code.height + 30), radius=24, fill=(255, 255, 255))
        shot.paste(code.convert(mode), ((1080 - code.width) // 2, y))
        y += code.height + 120
    draw.text((60, y + 20), "Show this code at the counter. Refreshes automatically.", fill=(90, 90, 90))
    return shot


def test_screenshot_with_text_around_decodes(record_property) -> None:
    shot = _screenshot(_rendered(6))
    buf = io.BytesIO()
    shot.save(buf, format="PNG")
    assert qr.decode_image(buf.getvalue()) == TEXT
    _report(record_property, screenshot="1080x2340 PNG", px_per_module=6)


def test_screenshot_with_transparent_background_decodes() -> None:
    """Black modules on transparent pixels: read against white, not against their black RGB."""
    code = _rendered(5)
    rgba = Image.new("RGBA", code.size, (0, 0, 0, 0))
    rgba.putalpha(Image.eval(code, lambda v: 255 - v))  # dark modules opaque black, the rest clear
    assert rgba.convert("L").getextrema() == (0, 0)  # without compositing the image is all black
    buf = io.BytesIO()
    rgba.save(buf, format="PNG")
    assert qr.decode_image(buf.getvalue()) == TEXT


def test_screenshot_with_another_qr_code_picks_the_elicence_one() -> None:
    other = Image.open(io.BytesIO(qr.render_png("https://zwdt.sh.gov.cn/help?topic=elicence", scale=8)))
    shot = _screenshot(other, _rendered(5))
    assert qr.decode_image(shot) == TEXT


def test_two_different_elicence_codes_are_refused() -> None:
    second = qr.encode_payload(_presentation(seed=7))
    assert second != TEXT
    code2 = Image.open(io.BytesIO(qr.render_png(second, scale=5)))
    with pytest.raises(CredentialError) as err:
        qr.decode_image(_screenshot(_rendered(5), code2))
    assert err.value.code == "malformed"
    assert "2 different QR codes" in err.value.detail


def test_image_without_a_qr_code_is_malformed_with_a_clear_message() -> None:
    blank = _screenshot()
    with pytest.raises(CredentialError) as err:
        qr.decode_image(blank)
    assert err.value.code == "malformed"
    assert "no QR code found" in err.value.detail


@pytest.mark.parametrize(
    "data",
    [b"", b"not an image at all", qr.render_png("EL1:AB")[:60]],
    ids=["empty", "text", "truncated_png"],
)
def test_unreadable_image_bytes_are_malformed(data: bytes) -> None:
    with pytest.raises(CredentialError) as err:
        qr.decode_image(data)
    assert err.value.code == "malformed"


def test_unsupported_input_type_is_malformed() -> None:
    with pytest.raises(CredentialError) as err:
        qr.decode_image(12345)  # type: ignore[arg-type]
    assert err.value.code == "malformed"


def test_image_above_the_pixel_bound_is_payload_too_large() -> None:
    img = _rendered(4)
    assert qr.decode_image(img, max_pixels=img.width * img.height) == TEXT
    with pytest.raises(CredentialError) as err:
        qr.decode_image(img, max_pixels=img.width * img.height - 1)
    assert err.value.code == "payload_too_large"


def test_decodes_from_a_path(tmp_path) -> None:
    path = tmp_path / "code.png"
    path.write_bytes(qr.render_png(TEXT, scale=3))
    assert qr.decode_image(path) == TEXT
    assert qr.decode_image(str(path)) == TEXT
    with pytest.raises(FileNotFoundError):
        qr.decode_image(tmp_path / "missing.png")


def test_reading_needs_no_numpy() -> None:
    """numpy is not a dependency: zxing-cpp must take the PIL image as it is. Checked in a fresh
    interpreter where importing numpy fails, whether or not it is installed here."""
    script = (
        "import sys; sys.modules['numpy'] = None\n"
        "from credentials import qr\n"
        "text = qr.encode_payload('AQ.AQ.AQ~AQ~')\n"
        "assert qr.decode_image(qr.render_png(text, scale=3)) == text\n"
        "assert 'numpy' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
        "print('ok')\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


# --- a third, independent encoder: the qrcode library ---------------------------------------------------


def _qrcode_png(text: str, level: str = "M") -> tuple[Image.Image, int]:
    qrcode = pytest.importorskip("qrcode")
    import qrcode.util

    levels = {"L": qrcode.constants.ERROR_CORRECT_L, "M": qrcode.constants.ERROR_CORRECT_M,
              "Q": qrcode.constants.ERROR_CORRECT_Q, "H": qrcode.constants.ERROR_CORRECT_H}
    code = qrcode.QRCode(error_correction=levels[level], box_size=4, border=4)
    code.add_data(qrcode.util.QRData(text.encode("ascii"), mode=qrcode.util.MODE_ALPHA_NUM))
    code.make(fit=True)
    return code.make_image().get_image().convert("L"), code.version


@pytest.mark.parametrize("level", ["L", "M", "Q", "H"])
def test_an_independent_encoder_agrees_on_the_symbol_and_its_code_reads(level: str) -> None:
    # zint (our writer) and the qrcode library put the same EL1 text in a symbol of the same version,
    # and what qrcode drew decodes to the text with our reader.
    img, version = _qrcode_png(TEXT, level)
    assert qr.qr_info(TEXT, level).version == version
    assert qr.decode_image(img) == TEXT
    assert qr.decode_payload(qr.decode_image(img)) == PRESENTATION
