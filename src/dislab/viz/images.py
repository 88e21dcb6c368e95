"""Image grids of a trained model: reconstructions and latent traversals, PNG / GIF files.

The grids themselves are :mod:`dislab.train.pictures` (the training loop writes them too);
they are re-exported here under their usual names. :func:`label_grid` (row and column labels
for the run report) is viz's own.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from dislab.train.pictures import (
    image_grid,
    reconstruction_grid,
    save_gif,
    save_png,
    traversal_frames,
    traversal_grid,
)

__all__ = [
    "image_grid",
    "reconstruction_grid",
    "traversal_grid",
    "traversal_frames",
    "label_grid",
    "save_png",
    "save_gif",
]


def label_grid(grid: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str],
               cell: tuple[int, int], pad: int = 2) -> np.ndarray:
    """``grid`` (an :func:`image_grid` of ``len(row_labels)`` rows and ``len(col_labels)``
    columns of ``cell = (h, w)`` pixel images, ``pad`` pixels apart) with a white margin on
    the left naming each row and one on top naming each column (every k-th column where the
    names are wider than a cell). Returns ``(top + H, left + W, 3)`` uint8; the grid itself
    is unchanged at offset ``(top, left)``."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def size(text: str) -> tuple[int, int]:
        x0, y0, x1, y1 = probe.textbbox((0, 0), text, font=font)
        return x1 - x0, y1 - y0

    h, w = cell
    text_w = max([size(t)[0] for t in col_labels] + [1])
    text_h = max([size(t)[1] for t in list(col_labels) + list(row_labels)] + [1])
    left = max([size(t)[0] for t in row_labels] + [1]) + 6
    top = text_h + 6
    img = Image.fromarray(np.asarray(grid, dtype=np.uint8)).convert("RGB")
    canvas = Image.new("RGB", (img.width + left, img.height + top), (255, 255, 255))
    canvas.paste(img, (left, top))
    draw = ImageDraw.Draw(canvas)
    for r, text in enumerate(row_labels):
        y = top + pad + r * (h + pad) + h / 2
        draw.text((left - 3, y), text, fill=(0, 0, 0), font=font, anchor="rm")
    every = max(1, int(np.ceil((text_w + 4) / (w + pad))))
    for c, text in enumerate(col_labels):
        if c % every and c != len(col_labels) - 1:
            continue
        x = left + pad + c * (w + pad) + w / 2
        draw.text((x, top - 3), text, fill=(0, 0, 0), font=font, anchor="md")
    return np.asarray(canvas)
