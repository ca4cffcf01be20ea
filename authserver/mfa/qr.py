"""QR codes for otpauth:// URIs, drawn here with ``qrcode`` (no external service sees the secret).

SVG for our pages (inline, scales on any screen) and PNG for mobile apps, whose image views rarely
render SVG.
"""

from __future__ import annotations

import base64
import io

import qrcode  # type: ignore[import-untyped]
import qrcode.image.svg  # type: ignore[import-untyped]
from qrcode.constants import ERROR_CORRECT_M  # type: ignore[import-untyped]


def _qr(data: str) -> qrcode.QRCode:
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=8, border=4)
    code.add_data(data)
    code.make(fit=True)
    return code


def svg(data: str) -> str:
    """A standalone ``<svg>`` element (no XML declaration), safe to place inline in HTML."""
    image = _qr(data).make_image(image_factory=qrcode.image.svg.SvgPathImage)
    text = str(image.to_string(encoding="unicode"))
    start = text.find("<svg")
    return text[start:] if start >= 0 else text


def png(data: str) -> bytes:
    from qrcode.image.pure import PyPNGImage  # type: ignore[import-untyped]

    buffer = io.BytesIO()
    _qr(data).make_image(image_factory=PyPNGImage).save(buffer)
    return buffer.getvalue()


def png_data_uri(data: str) -> str:
    return "data:image/png;base64," + base64.b64encode(png(data)).decode("ascii")
