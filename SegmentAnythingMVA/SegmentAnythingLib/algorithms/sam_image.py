"""Slice image and prompt geometry for SAM: validation, preprocessing, coordinates, upsampling.

Frames: the *slice image* is (rows, columns, 3) uint8 with points as (x=column, y=row) pixel
coordinates; the *model input* is the image resized so that its longest side is ``img_size``
(1024 for the released models), padded at the bottom and right; *low-res* masks cover the padded
input at a quarter of its size.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .sam_errors import (
    EmptyPromptError,
    InvalidImageError,
    InvalidPromptError,
    PromptOutsideImageError,
)


def validate_slice_image(image: np.ndarray) -> None:
    """Check that ``image`` is a (rows, columns, 3) uint8 array with at least 2 x 2 pixels.

    Raises
    ------
    InvalidImageError
    """
    if not isinstance(image, np.ndarray):
        raise InvalidImageError(f"The slice image must be a NumPy array, not {type(image).__name__}.")
    if image.ndim != 3 or image.shape[2] != 3:
        raise InvalidImageError(
            f"The slice image must have shape (rows, columns, 3), got {image.shape}; repeat a "
            f"grey-level slice into three channels.")
    if image.dtype != np.uint8:
        raise InvalidImageError(
            f"The slice image must be uint8 (already windowed), got {image.dtype}.")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise InvalidImageError(f"The slice image is too small: {image.shape[:2]}.")


def resized_shape(original_size: Tuple[int, int], img_size: int) -> Tuple[int, int]:
    """(rows, columns) after scaling the longest side to ``img_size`` (rounded as SAM does)."""
    rows, columns = original_size
    scale = img_size / max(rows, columns)
    return int(rows * scale + 0.5), int(columns * scale + 0.5)


def preprocess_image(image: np.ndarray, img_size: int, pixel_mean: torch.Tensor,
                     pixel_std: torch.Tensor, device: torch.device) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """Resize (longest side), normalise and pad a validated slice image for the image encoder.

    Returns
    -------
    tensor : torch.Tensor, float32, shape (1, 3, img_size, img_size)
    input_size : (int, int)
        Rows and columns of the resized image before padding.
    """
    input_size = resized_shape(image.shape[:2], img_size)
    pixels = torch.from_numpy(np.ascontiguousarray(image)).to(device)
    pixels = pixels.permute(2, 0, 1).unsqueeze(0).float()
    # Antialiased bilinear matches the PIL resize of segment_anything's ResizeLongestSide.
    pixels = F.interpolate(pixels, size=input_size, mode="bilinear", align_corners=False,
                           antialias=True).round_().clamp_(0, 255)
    pixels = (pixels - pixel_mean.view(1, 3, 1, 1)) / pixel_std.view(1, 3, 1, 1)
    padded = F.pad(pixels, (0, img_size - input_size[1], 0, img_size - input_size[0]))
    return padded, input_size


def prompt_to_model_frame(
    original_size: Tuple[int, int],
    input_size: Tuple[int, int],
    points_xy: Optional[np.ndarray],
    labels: Optional[np.ndarray],
    box_xyxy: Optional[np.ndarray],
) -> Tuple[Optional[np.ndarray], Optional[np.ndarray], Optional[np.ndarray]]:
    """Validate a prompt in slice pixel coordinates and scale it to the model input frame.

    Parameters
    ----------
    original_size : (rows, columns) of the slice image.
    input_size : (rows, columns) of the resized image.
    points_xy : array-like (N, 2) of (x=column, y=row) pixel coordinates, or None.
    labels : array-like (N,) of 1 (positive) / 0 (negative), or None (all positive).
    box_xyxy : array-like (4,) of (x_min, y_min, x_max, y_max) pixel coordinates, or None.

    Returns
    -------
    points (N, 2) float32, labels (N,) float32, box (2, 2) float32 in the model frame; None where
    absent.

    Raises
    ------
    EmptyPromptError, InvalidPromptError, PromptOutsideImageError
    """
    rows, columns = original_size
    scale = np.array([input_size[1] / columns, input_size[0] / rows], dtype=np.float64)
    points_out = labels_out = box_out = None
    if points_xy is not None and len(points_xy) > 0:
        points = np.asarray(points_xy, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != 2 or not np.all(np.isfinite(points)):
            raise InvalidPromptError(f"Points must be finite (x, y) pairs, shape (N, 2); got {points.shape}.")
        _check_inside(points, rows, columns, "Point")
        if labels is None:
            labels = np.ones(len(points))
        labels = np.asarray(labels)
        if labels.shape != (len(points),) or not np.all(np.isin(labels, (0, 1))):
            raise InvalidPromptError(
                f"Labels must be one 1 (positive) or 0 (negative) per point; got {labels!r}.")
        points_out = (points * scale).astype(np.float32)
        labels_out = labels.astype(np.float32)
    if box_xyxy is not None:
        box = np.asarray(box_xyxy, dtype=np.float64)
        if box.shape != (4,) or not np.all(np.isfinite(box)):
            raise InvalidPromptError(f"A box is (x_min, y_min, x_max, y_max); got {box_xyxy!r}.")
        if box[0] > box[2] or box[1] > box[3]:
            raise InvalidPromptError(f"Box corners are swapped: {box.tolist()}.")
        _check_inside(box.reshape(2, 2), rows, columns, "Box corner")
        box_out = (box.reshape(2, 2) * scale).astype(np.float32)
    if points_out is None and box_out is None:
        raise EmptyPromptError("Click a point or draw a box to prompt Segment Anything.")
    return points_out, labels_out, box_out


def _check_inside(points: np.ndarray, rows: int, columns: int, what: str) -> None:
    outside = (points[:, 0] < 0) | (points[:, 0] > columns - 1) | (points[:, 1] < 0) | (points[:, 1] > rows - 1)
    if np.any(outside):
        first = points[np.argmax(outside)].tolist()
        raise PromptOutsideImageError(
            f"{what} (x={first[0]:g}, y={first[1]:g}) is outside the slice image of "
            f"{columns} x {rows} pixels.")


def _linear_matrix(size_in: int, size_out: int) -> torch.Tensor:
    """(size_out, size_in) matrix of torch's 1D linear interpolation (align_corners=False)."""
    eye = torch.eye(size_in, dtype=torch.float64).unsqueeze(0)
    return F.interpolate(eye, size=size_out, mode="linear", align_corners=False)[0].T


@lru_cache(maxsize=16)
def upsampling_matrices(lowres_size: int, img_size: int, input_size: Tuple[int, int],
                        original_size: Tuple[int, int]) -> Tuple[torch.Tensor, torch.Tensor]:
    """Row and column operators taking low-res logits straight to the slice image.

    segment_anything upsamples to ``img_size``, crops the padding, then resizes to the original
    size, all bilinear; each step is linear per axis, so their product is one small matrix per
    axis and ``rows @ logits @ columns.T`` equals the stock result without the 1024^2 detour.

    Returns
    -------
    rows : torch.Tensor, float32, (original rows, lowres_size)
    columns : torch.Tensor, float32, (original columns, lowres_size)
    """
    to_input = _linear_matrix(lowres_size, img_size)
    operators = []
    for axis in (0, 1):
        cropped = to_input[: input_size[axis]]
        operators.append((_linear_matrix(input_size[axis], original_size[axis]) @ cropped).float())
    return operators[0], operators[1]


def upsample_logits(lowres_logits: torch.Tensor, img_size: int, input_size: Tuple[int, int],
                    original_size: Tuple[int, int]) -> torch.Tensor:
    """Logits (..., L, L) at low resolution -> (..., rows, columns) of the slice image."""
    rows, columns = upsampling_matrices(lowres_logits.shape[-1], img_size, tuple(input_size),
                                        tuple(original_size))
    rows = rows.to(lowres_logits.device)
    columns = columns.to(lowres_logits.device)
    return rows @ lowres_logits.float() @ columns.T
