"""Turn the screen of an Xvfb started with `-fbdir DIR` (the XWD file DIR/Xvfb_screen0) into a PNG, with the
standard library only: the clean-system test takes its screenshot this way, installing no image tools.

    python3 packaging/xwd_to_png.py DIR/Xvfb_screen0 screenshot.png
"""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

HEADER_FIELDS = ("header_size file_version pixmap_format pixmap_depth width height xoffset byte_order bitmap_unit "
                 "bitmap_bit_order bitmap_pad bits_per_pixel bytes_per_line visual_class red_mask green_mask "
                 "blue_mask bits_per_rgb colormap_entries ncolors").split()


def read_xwd(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and packed RGB rows of a 32-bits-per-pixel true-colour XWD image (what Xvfb writes at depth 24)."""
    header = dict(zip(HEADER_FIELDS, struct.unpack(">20I", data[:80])))
    if header["bits_per_pixel"] != 32 or header["pixmap_format"] != 2:
        raise ValueError(f"only 32-bit ZPixmap screens are read (this one: {header['bits_per_pixel']} bits, "
                         f"format {header['pixmap_format']}); start Xvfb with -screen 0 WxHx24")
    width, height, stride = header["width"], header["height"], header["bytes_per_line"]
    start = header["header_size"] + header["ncolors"] * 12
    pixels = data[start:start + stride * height]
    # The byte of each channel inside a pixel, from its mask and the file's byte order (0: least significant first).
    def offset(mask: int) -> int:
        shift = (mask & -mask).bit_length() - 1
        return shift // 8 if header["byte_order"] == 0 else 3 - shift // 8

    rows = bytearray()
    for y in range(height):
        row = pixels[y * stride:y * stride + width * 4]
        rgb = bytearray(width * 3)
        for channel, mask in enumerate((header["red_mask"], header["green_mask"], header["blue_mask"])):
            rgb[channel::3] = row[offset(mask)::4]
        rows += b"\0" + rgb  # PNG filter type 0 for each row
    return width, height, bytes(rows)


def png(width: int, height: int, rows: bytes) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">2I5B", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(b"IEND", b""))


def main() -> int:
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    width, height, rows = read_xwd(source.read_bytes())
    target.write_bytes(png(width, height, rows))
    print(f"{target}: {width}x{height}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
