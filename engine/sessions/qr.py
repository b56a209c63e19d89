"""Pairing QR codes as PNG images."""

from __future__ import annotations

import io

import qrcode
from qrcode.image.pure import PyPNGImage

PNG_MIME_TYPE = "image/png"


def qr_png(value: str) -> bytes:
    """A PNG image of the QR code encoding `value`."""
    image = qrcode.make(value, image_factory=PyPNGImage, box_size=8, border=4)
    buffer = io.BytesIO()
    image.save(buffer)
    return buffer.getvalue()
