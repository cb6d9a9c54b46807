"""The one photo reader: training, evaluation, prediction and the notebooks read images through it.

Photos as people take them, checked on real files (tests/test_images.py):

- EXIF orientation is applied: a phone's portrait JPEG is stored landscape with a tag saying
  "rotate 90 degrees when shown"; segkit reads it as it is seen, so predictions come out in the
  orientation the user sees (OpenCV's IMREAD_COLOR does the same; Pillow alone does not).
- grayscale, bilevel and palette images become RGB; 16-bit images are scaled to 8 bits
  (65535 -> 255; Pillow's own conversion would clip everything above 255 to white); CMYK
  (print-workflow JPEGs) is converted without its colour profile, so colours are approximate.
- an alpha channel is dropped when every pixel is opaque; a transparent pixel is refused, since
  which background it stands on is the user's choice, not segkit's.
- 32-bit integer and floating-point images (depth maps, HDR) are refused.
- a missing, corrupt or truncated file raises a DataError naming it. Pillow judges every file; OpenCV
  alone would return a truncated JPEG with its missing part grey and only print a warning.

Speed: the common case, an 8-bit RGB PNG or a complete JPEG (it ends with its end-of-image marker)
shown as stored, is decoded by OpenCV, the same pixels 20-25 % faster than Pillow plus its copy
into numpy (2048x1024, CPU time); everything else, and any file OpenCV cannot decode, by Pillow.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError, features

from segkit.errors import DataError

ORIENTATION_TAG = 0x0112  # EXIF Orientation: 1 = as stored; 5..8 swap width and height when shown
_GREY = ("1", "L", "P")  # converted by Pillow itself, losslessly
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


def read_photo(path: str | Path) -> np.ndarray:
    """Read an image file as it is seen, as 8-bit RGB.

    Args:
        path: a PNG, JPEG, BMP, TIFF or WebP file.

    Returns:
        (H, W, 3) uint8 RGB, EXIF orientation applied.

    Raises:
        DataError: the file is missing, not an image, corrupt or truncated, or holds what is not a
            photo (transparency, 32-bit or float pixels); the message says what was found and the fix.
    """
    path = Path(path)
    try:
        with Image.open(path) as im:
            turn = _orientation(im)  # from the header, before decoding: one answer for both decoders
            if turn == 1 and _plain(im, path) and (fast := _opencv(path, im.size)) is not None:
                return fast
            im.load()  # decode the whole file now: a truncated one fails here, naming itself
            return _to_rgb(im.transpose(_TRANSPOSE[turn]) if turn != 1 else im, path)
    except FileNotFoundError:
        raise DataError(
            f"image file not found: {path}. Fix: re-run discovery (the data set changed on disk) or check the path."
        ) from None
    except UnidentifiedImageError:
        raise DataError(_unreadable(path, "not an image file Pillow can read")) from None
    except Image.DecompressionBombError as err:
        raise DataError(
            f"image {path} is too large to decode safely ({err}). Fix: downscale it first, e.g. to "
            "4000 pixels on its long side."
        ) from None
    except (OSError, SyntaxError, ValueError) as err:  # Pillow's errors for damaged data
        raise DataError(_unreadable(path, str(err))) from None


def photo_size(path: str | Path) -> tuple[int, int]:
    """(H, W) of an image as it is seen (EXIF orientation counted), from its header only."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            w, h = im.size
            return (w, h) if _orientation(im) in (5, 6, 7, 8) else (h, w)
    except OSError as err:
        raise DataError(_unreadable(path, f"its header cannot be read: {err}")) from None


def orientation(path: str | Path) -> int:
    """The EXIF orientation of an image file (1 = as stored, also when there is no tag)."""
    try:
        with Image.open(path) as im:
            return _orientation(im)
    except OSError:
        return 1


def _plain(im: Image.Image, path: Path) -> bool:
    """An 8-bit RGB PNG, or a JPEG that ends with its end-of-image marker."""
    if im.mode != "RGB" or im.format not in ("PNG", "JPEG"):
        return False
    if im.format == "PNG":
        return True  # OpenCV (libpng) refuses a truncated or corrupt PNG
    with path.open("rb") as f:  # a JPEG cut short lacks its end marker: Pillow decodes it and says so
        f.seek(-2, 2)
        return f.read(2) == b"\xff\xd9"


def _opencv(path: Path, size: tuple[int, int]) -> np.ndarray | None:
    """(H, W, 3) RGB decoded by OpenCV, or None (Pillow then decodes it, or names what is wrong)."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if bgr is None or bgr.shape[:2] != (size[1], size[0]):
        return None
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _orientation(im: Image.Image) -> int:
    """The EXIF orientation in an opened file's header. A PNG's counts when its eXIf chunk precedes the
    image data (as the PNG specification asks): finding a later one would mean decoding the whole file."""
    if im.format == "PNG":
        exif = Image.Exif()
        if im.info.get("exif"):
            exif.load(im.info["exif"])
    else:
        exif = im.getexif()
    value = exif.get(ORIENTATION_TAG, 1)
    return value if value in range(1, 9) else 1


# How a viewer shows each EXIF orientation (what Pillow's ImageOps.exif_transpose does).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


# ISO-BMFF brands of still images (`ftyp` at byte 4, the brand after it).
HEIF_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1")  # HEIC/HEIF: an iPhone's photos
AVIF_BRANDS = (b"avif", b"avis")  # Pillow reads these when built with libavif (its wheels are)
STILL_IMAGE_BRANDS = HEIF_BRANDS + AVIF_BRANDS


def is_heif(path: Path) -> bool:
    """A HEIC/HEIF still image, or an AVIF one when this Pillow cannot read AVIF: by its header, or by
    its name when the header cannot be read."""
    avif = not features.check("avif")
    brands = HEIF_BRANDS + (AVIF_BRANDS if avif else ())
    suffixes = (".heic", ".heif") + ((".avif",) if avif else ())
    try:
        with path.open("rb") as f:
            head = f.read(12)
    except OSError:
        head = b""
    if head[4:8] == b"ftyp":
        return head[8:12] in brands
    return path.suffix.lower() in suffixes


def _unreadable(path: Path, why: str) -> str:
    size = path.stat().st_size if path.is_file() else 0
    if is_heif(path):
        return (
            f"cannot read {path}: it is a HEIC/HEIF photo (an iPhone's default format), which the "
            "Pillow installed here does not decode. Fix: convert it to JPEG or PNG (e.g. `heif-convert IN OUT.jpg`"
            " from libheif; on the phone, Settings > Camera > Formats > Most Compatible), then predict that."
        )
    return (
        f"cannot decode image file {path} ({size} bytes): it is corrupt or truncated ({why}); expected a "
        "complete image file (PNG, JPEG, ...). Fix: re-extract or re-download it (a copy that stopped half-way "
        "is truncated), or remove it."
    )


def _to_rgb(im: Image.Image, path: Path) -> np.ndarray:
    """(H, W, 3) uint8 of any photo-like mode; a DataError for the rest."""
    mode = im.mode
    if mode == "RGB":
        return np.array(im)
    if mode in _SIXTEEN_BIT or (mode == "I" and _fits_16_bits(im)):
        grey = np.asarray(im).astype(np.float64)  # (H, W) 0..65535
        return np.repeat(np.round(grey * (255 / 65535)).astype(np.uint8)[..., None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in im.info):
        return _opaque_rgb(im.convert("RGBA"), path)
    if mode in (*_GREY, "CMYK", "YCbCr"):
        return np.array(im.convert("RGB"))
    raise DataError(
        f"image {path} has pixel mode {mode!r} ({_MODE_NAMES.get(mode, 'not a photo')}): expected an 8-bit or "
        "16-bit photo (RGB, grayscale, palette or CMYK). Fix: export it as an 8-bit RGB PNG or JPEG."
    )


_MODE_NAMES = {"I": "32-bit integers", "F": "32-bit floats, e.g. a depth map", "LAB": "CIE Lab", "HSV": "HSV"}


def _fits_16_bits(im: Image.Image) -> bool:
    lo, hi = im.getextrema()
    return 0 <= lo and hi <= 65535


def _opaque_rgb(rgba: Image.Image, path: Path) -> np.ndarray:
    array = np.array(rgba)  # (H, W, 4)
    transparent = int((array[..., 3] < 255).sum())
    if transparent:
        raise DataError(
            f"image {path} has {transparent} transparent pixels ({100 * transparent / array[..., 3].size:.1f}%): "
            "segkit predicts on photos and will not guess the background behind them. Fix: flatten it onto the "
            "background you want (e.g. PIL: Image.alpha_composite(background, image).convert('RGB')) and save it "
            "as RGB."
        )
    return np.ascontiguousarray(array[..., :3])
