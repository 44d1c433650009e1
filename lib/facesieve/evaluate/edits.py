"""The edits a photograph goes through on its way around the web, as near-copy generators.

Each edit takes the original's RGB image and a seeded random generator and returns the bytes of
a new JPEG: the same photograph, changed the way copies are changed in the wild (re-saved,
resized, cropped, padded into a frame, mirrored, rotated a little, colour-graded, turned grey,
blurred or sharpened, captioned or watermarked). ``facesieve eval`` injects them and scores
recall per edit kind; ``bench/neardup_evidence.py`` measures near-duplicate evidence against
them. Strengths are those of ordinary copies, not adversarial ones: a caption covers the bottom
12-20% of the photo, a crop removes at most 15% per side, a rotation is at most 8 degrees.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable

from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

Edit = Callable[[Image.Image, random.Random], Image.Image]

_WORDS = ["holiday", "2019", "best day", "family", "copyright", "do not share", "team", "lol"]


def _resize(img: Image.Image, factor: float) -> Image.Image:
    w, h = img.size
    return img.resize((max(round(w * factor), 8), max(round(h * factor), 8)), Image.LANCZOS)


def _downscale(img: Image.Image, rng: random.Random) -> Image.Image:
    return _resize(img, rng.uniform(0.45, 0.8))


def _upscale(img: Image.Image, rng: random.Random) -> Image.Image:
    return _resize(img, rng.uniform(1.25, 2.0))


def _crop(img: Image.Image, rng: random.Random) -> Image.Image:
    """A tighter frame: each side loses 0-15%, at least 8% in all."""
    w, h = img.size
    while True:
        m = [rng.uniform(0.0, 0.15) for _ in range(4)]
        if sum(m) >= 0.08 * 4 / 2:
            break
    return img.crop((int(w * m[0]), int(h * m[1]), int(w * (1 - m[2])), int(h * (1 - m[3]))))


def _pad(img: Image.Image, rng: random.Random) -> Image.Image:
    """Letterboxed or framed: bars of 8-25% on two opposite sides, or a frame on all four."""
    w, h = img.size
    colour = rng.choice([(0, 0, 0), (255, 255, 255), (32, 32, 32), (200, 30, 40)])
    if rng.random() < 0.5:
        bar = round(rng.uniform(0.08, 0.25) * (h if rng.random() < 0.5 else w))
        vertical = rng.random() < 0.5
        border = (0, bar, 0, bar) if vertical else (bar, 0, bar, 0)
    else:
        border = tuple(round(rng.uniform(0.04, 0.12) * max(w, h)) for _ in range(4))
    return ImageOps.expand(img, border=border, fill=colour)


def _mirror(img: Image.Image, rng: random.Random) -> Image.Image:
    return ImageOps.mirror(img)


def _rotate(img: Image.Image, rng: random.Random) -> Image.Image:
    angle = rng.choice([-1, 1]) * rng.uniform(2.0, 8.0)
    return img.rotate(angle, resample=Image.BICUBIC, expand=rng.random() < 0.5)


def _colour(img: Image.Image, rng: random.Random) -> Image.Image:
    """Brightness, contrast and saturation changed together, as a filter app does."""
    img = ImageEnhance.Brightness(img).enhance(
        rng.choice([rng.uniform(0.6, 0.85), rng.uniform(1.15, 1.4)])
    )
    img = ImageEnhance.Contrast(img).enhance(rng.uniform(0.7, 1.4))
    img = ImageEnhance.Color(img).enhance(rng.uniform(0.4, 1.8))
    if rng.random() < 0.5:  # a warm or cool cast
        r, g, b = img.split()
        shift = rng.choice([1, -1]) * rng.randint(10, 30)
        r = r.point(lambda v: min(255, max(0, v + shift)))
        b = b.point(lambda v: min(255, max(0, v - shift)))
        img = Image.merge("RGB", (r, g, b))
    return img


def _grayscale(img: Image.Image, rng: random.Random) -> Image.Image:
    return ImageOps.grayscale(img).convert("RGB")


def _blur(img: Image.Image, rng: random.Random) -> Image.Image:
    radius = rng.uniform(0.8, 2.0) * max(img.size) / 250
    return img.filter(ImageFilter.GaussianBlur(radius))


def _sharpen(img: Image.Image, rng: random.Random) -> Image.Image:
    return img.filter(ImageFilter.UnsharpMask(radius=2, percent=rng.randint(120, 250), threshold=2))


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=max(size, 8))


def _caption(img: Image.Image, rng: random.Random) -> Image.Image:
    """A text band over the bottom 12-20% of the photo (meme or news caption)."""
    img = img.copy()
    w, h = img.size
    band = round(h * rng.uniform(0.12, 0.20))
    draw = ImageDraw.Draw(img)
    fill = rng.choice([(0, 0, 0), (255, 255, 255), (20, 40, 120)])
    draw.rectangle((0, h - band, w, h), fill=fill)
    text = " ".join(rng.sample(_WORDS, 2)).upper()
    ink = (255, 255, 255) if fill != (255, 255, 255) else (0, 0, 0)
    draw.text((w * 0.05, h - band * 0.85), text, fill=ink, font=_font(round(band * 0.6)))
    return img


def _watermark(img: Image.Image, rng: random.Random) -> Image.Image:
    """Semi-transparent text across the photo, as stock and social sites stamp it."""
    base = img.convert("RGBA")
    layer = Image.new("RGBA", base.size, (0, 0, 0, 0))
    w, h = base.size
    draw = ImageDraw.Draw(layer)
    alpha = rng.randint(60, 110)
    text = rng.choice(["(c) photos", "SAMPLE", "stock.example", "@someone"])
    size = round(min(w, h) * rng.uniform(0.08, 0.14))
    for k in range(rng.randint(1, 3)):
        y = h * rng.uniform(0.1, 0.85)
        draw.text(
            (w * rng.uniform(0.0, 0.4), y), text, fill=(255, 255, 255, alpha), font=_font(size)
        )
        if k == 0 and rng.random() < 0.5:
            draw.text(
                (w * 0.55, h * 0.9 - size), text, fill=(255, 255, 255, 160), font=_font(size // 2)
            )
    return Image.alpha_composite(base, layer).convert("RGB")


def _reencode(img: Image.Image, rng: random.Random) -> Image.Image:
    return img  # the low JPEG quality is chosen in ``apply``


EDITS: dict[str, Edit] = {
    "reencode": _reencode,
    "downscale": _downscale,
    "upscale": _upscale,
    "crop": _crop,
    "pad": _pad,
    "mirror": _mirror,
    "rotate": _rotate,
    "colour": _colour,
    "grayscale": _grayscale,
    "blur": _blur,
    "sharpen": _sharpen,
    "caption": _caption,
    "watermark": _watermark,
}


def apply_edit(data: bytes, kind: str, rng: random.Random) -> bytes:
    """The JPEG bytes of ``kind`` applied to the image in ``data`` (EXIF orientation applied)."""
    if kind not in EDITS:
        raise ValueError(f"unknown edit {kind!r}; known: {', '.join(EDITS)}")
    img = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    out = EDITS[kind](img, rng)
    quality = rng.randint(25, 55) if kind == "reencode" else rng.randint(75, 95)
    buf = io.BytesIO()
    out.save(buf, "JPEG", quality=quality)
    return buf.getvalue()
