"""packaging/xwd_to_png.py: the clean-system test's screenshots, from Xvfb's XWD screen file to PNG."""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

from PySide6.QtGui import QColor, QImage

SCRIPT = Path(__file__).resolve().parents[2] / "packaging" / "xwd_to_png.py"


def load_converter():
    spec = importlib.util.spec_from_file_location("xwd_to_png", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def xwd_image(pixels: list[list[tuple[int, int, int]]], stride_padding: int = 0) -> bytes:
    """An XWD file as Xvfb writes it at depth 24: 32 bits per pixel, least significant byte first, BGRX."""
    height, width = len(pixels), len(pixels[0])
    name = b"Xvfb\0"
    header_size = 100 + len(name)
    stride = width * 4 + stride_padding
    header = struct.pack(">25I", header_size, 7, 2, 24, width, height, 0, 0, 32, 0, 32, 32, stride, 4,
                         0xFF0000, 0xFF00, 0xFF, 8, 256, 0, width, height, 0, 0, 0)
    rows = b"".join(b"".join(bytes((b, g, r, 0)) for r, g, b in row) + b"\0" * stride_padding for row in pixels)
    return header + name + rows


def test_xwd_screen_becomes_a_png_with_the_same_pixels(tmp_path, qapp):
    converter = load_converter()
    pixels = [[(255, 0, 0), (0, 255, 0), (0, 0, 255)], [(10, 20, 30), (255, 255, 255), (0, 0, 0)]]
    width, height, rows = converter.read_xwd(xwd_image(pixels, stride_padding=4))
    target = tmp_path / "screen.png"
    target.write_bytes(converter.png(width, height, rows))
    image = QImage(str(target))
    assert (image.width(), image.height()) == (3, 2)
    for y, row in enumerate(pixels):
        for x, colour in enumerate(row):
            assert image.pixelColor(x, y) == QColor(*colour)
