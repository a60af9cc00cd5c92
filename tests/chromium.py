"""Headless Chromium, as the tests use it to see pages and letters the way a reader's phone or desktop shows them."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--hide-scrollbars",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
WIDTHS = (390, 1200)
"""A phone held upright, and a desktop window."""

_MEASURE = (
    "<script>addEventListener('load', () => document.body.setAttribute('data-overflow',"
    " String(document.documentElement.scrollWidth - innerWidth)))</script>"
)


def chromium() -> str:
    found = shutil.which("chromium")
    assert found, "chromium is not installed (Debian package chromium; .ci/run installs it)"
    return found


def run(page: Path, profile: Path, *options: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}", *options, page.as_uri()],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def sideways_overflow(html: str, width: int, work: Path) -> int:
    """How many CSS pixels the page is wider than a window `width` px wide: 0 when nothing scrolls sideways."""
    page = work / f"measure-{width}.html"
    page.write_text(html.replace("</body>", _MEASURE + "</body>") if "</body>" in html else html + _MEASURE)
    dom = run(page, work / "profile", f"--window-size={width},900", "--virtual-time-budget=2000", "--dump-dom").stdout
    found = re.search(r'data-overflow="(-?\d+)"', dom)
    assert found, f"the page did not load: {dom[:500]}"
    return max(0, int(found.group(1)))


def screenshot(html: str, width: int, out: Path) -> Path:
    """The page at `width` px wide, as a PNG that is not blank."""
    page = out.with_suffix(".html")
    page.write_text(html)
    run(page, out.parent / "profile", f"--window-size={width},1400", f"--screenshot={out}")
    found_width, _, pixels = png_pixels(out)
    assert found_width == width
    assert len(set(pixels[i:i + 3] for i in range(0, len(pixels), 997))) > 5, f"{out} is blank"
    return out


def png_pixels(path: Path) -> tuple[int, int, bytes]:
    """Width, height and raw scanlines of an 8-bit RGB(A) PNG, read with the standard library."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks, width, height = 8, b"", 0, 0
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        body = data[position + 8:position + 8 + length]
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            chunks += body
        position += 12 + length
    return width, height, zlib.decompress(chunks)
