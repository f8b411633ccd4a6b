"""Regenerate docs/report.png: the HTML report of a fixture run, as headless Chromium draws it.

Usage (from the repository root)::

    .venv/bin/python docs/make_screenshot.py [--fixture tests/fixtures/reports/welcome-email.json]
                                             [--out docs/report.png] [--keep DIR]

Renders the fixture with :func:`expc.runtime.report.render_all` into a temporary
directory, screenshots ``report.html`` with Chromium (``/usr/bin/chromium`` or
``$CHROMIUM``; no network: the page references nothing outside itself), crops
the blank space below the content and stores a 256-colour PNG so the file stays
small enough to commit. ``--keep DIR`` also keeps the rendered reports there.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WIDTH = 1200
MAX_HEIGHT = 9000


def chromium() -> str:
    """The Chromium binary: $CHROMIUM, else chromium / chromium-browser / google-chrome on PATH."""
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)  # type: ignore[return-value]
    sys.exit("make_screenshot: no Chromium found (install it, e.g. `apt-get install -y chromium`, or set CHROMIUM)")


def screenshot(html: Path, png: Path, height: int = MAX_HEIGHT) -> None:
    """Headless Chromium, isolated profile, no network features, one tall window."""
    with tempfile.TemporaryDirectory() as profile:
        cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               f"--user-data-dir={profile}", "--hide-scrollbars", f"--window-size={WIDTH},{height}",
               f"--screenshot={png}", html.resolve().as_uri()]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)


def crop_and_compress(png: Path, out: Path, pad: int = 28) -> tuple[int, int]:
    """Crop the white space below the content, quantise to 256 colours, write ``out``; returns its size."""
    from PIL import Image, ImageChops

    with Image.open(png) as im:
        rgb = im.convert("RGB")
    bg = Image.new("RGB", rgb.size, (255, 255, 255))
    box = ImageChops.difference(rgb, bg).getbbox()
    bottom = min(rgb.height, (box[3] if box else rgb.height) + pad)
    cropped = rgb.crop((0, 0, rgb.width, bottom))
    small = cropped.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small.save(out, optimize=True)
    return small.size


def main() -> None:
    """Render, screenshot, crop, compress; print the result's size."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixture", type=Path, default=ROOT / "tests/fixtures/reports/welcome-email.json")
    parser.add_argument("--out", type=Path, default=ROOT / "docs/report.png")
    parser.add_argument("--keep", type=Path, default=None, help="also keep the rendered reports in this directory")
    args = parser.parse_args()

    from expc.runtime.report import render_all

    report = json.loads(args.fixture.read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        target = args.keep or Path(tmp) / "report"
        paths = render_all(report, target)
        raw = Path(tmp) / "raw.png"
        screenshot(paths["report_html"], raw)
        w, h = crop_and_compress(raw, args.out)
    print(f"wrote {args.out} ({w}x{h}, {args.out.stat().st_size / 1024:.0f} KB)")


if __name__ == "__main__":
    main()
