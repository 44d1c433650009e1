"""Cheap per-face quality signals, stored so the cleaning step can set its own thresholds."""

from __future__ import annotations

import cv2
import numpy as np


def face_size(box: np.ndarray) -> float:
    """The larger side of the face box in original-image pixels (``face_px``)."""
    return float(max(box[2] - box[0], box[3] - box[1]))


def sharpness(crop: np.ndarray) -> float:
    """Variance of the Laplacian of the aligned 112x112 crop: low values mean blur.

    Computed on the aligned crop so that it is comparable across image sizes.
    """
    gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(gray, cv2.CV_32F).var())


def yaw_degrees(landmarks: np.ndarray) -> float:
    """Rough head yaw from where the nose sits between the eyes (0 = frontal, +-90 = profile).

    A frontal nose projects halfway between the eyes; at yaw t it shifts by about sin(t) of half
    the eye distance. Good to ~10 degrees, which is what filtering profiles needs.
    """
    lm = landmarks.reshape(5, 2)
    left, right, nose = lm[0], lm[1], lm[2]
    axis = right - left
    dist = float(np.hypot(*axis))
    if dist < 1e-6:
        return 90.0
    mid = (left + right) / 2.0
    offset = float(np.dot(nose - mid, axis / dist))
    return float(np.degrees(np.arcsin(np.clip(offset / (dist / 2.0), -1.0, 1.0))))
