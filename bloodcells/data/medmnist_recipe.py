"""BloodMNIST's own pixel recipe: how medmnist made its 28x28 cells from the PBC photos.

The central 200x200 square of each ~360-pixel photo (rounded as torchvision's ``CenterCrop``
rounds), a bilinear resize to the target size, then a JPEG round trip at quality 75 with 4:2:0
chroma. The JPEG step matters: it blurs colour over 2x2 pixels and leaves 8x8 blocks, and a copy
made without it is easier to classify than the files a student downloads. Whatever the kit writes
in BloodMNIST's layout from photos goes through :func:`official_pixels`; notebook 01 shows the steps.

The official files were made with IJG libjpeg 9; Pillow ships libjpeg-turbo, whose rounding differs,
so pixels made here land within a grey level or two of the official ones, not bit for bit.
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

CROP_SIDE = 200  # pixels of the photo's centre that medmnist keeps
JPEG_QUALITY = 75


def centre_crop(image: Image.Image, side: int = CROP_SIDE) -> Image.Image:
    """The central ``side`` x ``side`` square (the whole image's shorter side if it is smaller)."""
    side = min(side, *image.size)
    left, top = int(round((image.width - side) / 2)), int(round((image.height - side) / 2))
    return image.crop((left, top, left + side, top + side))


def jpeg_round_trip(image: Image.Image, quality: int = JPEG_QUALITY) -> Image.Image:
    """Save as JPEG (4:2:0 chroma, like medmnist's files) and read back."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality, subsampling="4:2:0")
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return decoded.convert("RGB")


def official_steps(photo: Image.Image | np.ndarray, size: int = 28) -> dict[str, np.ndarray]:
    """Each stage of the recipe as ``uint8`` RGB: ``photo``, ``crop``, ``resized``, ``jpeg`` (the result)."""
    image = Image.fromarray(photo) if isinstance(photo, np.ndarray) else photo.convert("RGB")
    crop = centre_crop(image)
    resized = crop.resize((size, size), Image.Resampling.BILINEAR)
    stages = {"photo": image, "crop": crop, "resized": resized, "jpeg": jpeg_round_trip(resized)}
    return {name: np.asarray(stage, dtype=np.uint8) for name, stage in stages.items()}


def official_pixels(photo: Image.Image | np.ndarray, size: int = 28) -> np.ndarray:
    """One photo as BloodMNIST would store it: ``(size, size, 3) uint8``."""
    return official_steps(photo, size)["jpeg"]
