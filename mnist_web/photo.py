"""Ink from photos of handwriting on paper: uneven light, shadows, grain and JPEG noise.

A canvas drawing has one flat page colour, which extract_ink reads off the border. A photographed page
darkens towards a shadow, varies with the light and has grain stronger than the canvas noise floor, so
here the page is estimated everywhere, divided out, and the strokes are told from the grain by a
threshold set on the image's own statistics.
"""

import cv2
import numpy as np

# The page is estimated on a copy reduced to this longest side: light varies slowly, strokes are thin.
BACKGROUND_SIDE = 256
# Closing window on the reduced copy, as a fraction of its longest side: wider than any pen stroke.
CLOSING_FRACTION = 0.08
# A page edge whose smoothed brightness spans more than this, or whose grain exceeds GRAIN, is a photo's.
UNEVEN_LIGHT = 0.04
GRAIN = 0.006
# Components smaller than this fraction of the largest stroke component are grain or dust.
SPECK_FRACTION = 0.01


def _page(gray):
    """The paper's brightness at every pixel: dark strokes closed over on a reduced copy, then smoothed."""
    height, width = gray.shape
    factor = max(1.0, max(height, width) / BACKGROUND_SIDE)
    size = (max(1, round(width / factor)), max(1, round(height / factor)))
    small = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    side = 2 * max(1, round(CLOSING_FRACTION * max(size) / 2)) + 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
    page = cv2.morphologyEx(small, cv2.MORPH_CLOSE, kernel)
    page = cv2.GaussianBlur(page, (0, 0), side / 2)
    return cv2.resize(page, (width, height), interpolation=cv2.INTER_LINEAR)


def looks_like_photo(gray):
    """True when the page's edge is unevenly lit or grainy, as a photo's is and a canvas drawing's never is."""
    # The edge of the picture is page (strokes rarely reach it): a canvas has one flat colour there.
    border = np.concatenate([gray[0], gray[:, -1], gray[-1, ::-1], gray[::-1, 0]]).astype(np.float32)
    window = max(5, len(border) // 100) | 1
    trend = cv2.medianBlur(np.round(border * 255).astype(np.uint8).reshape(1, -1), window).ravel() / 255.0
    light = float(np.percentile(trend, 95) - np.percentile(trend, 5))
    grain = float(np.median(np.abs(border - trend)))
    return light > UNEVEN_LIGHT or grain > GRAIN


def photo_ink(gray):
    """Return ink strength 0..1 (white on black) of a photographed page, with grain and specks removed."""
    page = _page(gray)
    contrast = np.clip(1.0 - gray / np.maximum(page, 1e-3), 0.0, 1.0).astype(np.float32)
    # Most pixels are paper: their median and spread measure the grain; Otsu splits strokes from paper.
    centre = float(np.median(contrast))
    spread = 1.4826 * float(np.median(np.abs(contrast - centre)))
    otsu, _ = cv2.threshold(np.round(contrast * 255).astype(np.uint8), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    threshold = max(otsu / 255.0, centre + 6.0 * spread, 0.08)
    strokes = contrast > threshold
    if not strokes.any():
        return np.zeros_like(contrast)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(strokes.astype(np.uint8), connectivity=8)
    areas = stats[1:, cv2.CC_STAT_AREA]
    keep = np.concatenate([[False], areas >= max(3, SPECK_FRACTION * areas.max())])
    strokes = keep[labels]
    # Scale so the stroke cores read 1, like a canvas pen; the soft edge below the threshold fades out.
    peak = float(np.percentile(contrast[strokes], 75)) if strokes.any() else 1.0
    floor = 0.5 * threshold
    ink = np.clip((contrast - floor) / max(peak - floor, 1e-3), 0.0, 1.0)
    near = cv2.dilate(strokes.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    ink[~near] = 0.0
    return ink.astype(np.float32)
