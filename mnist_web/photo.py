"""Ink from photos of handwriting on paper: uneven light, shadows, grain and JPEG noise.

A canvas drawing has one flat page colour, which extract_ink reads off the border. A photographed page
darkens towards a shadow, varies with the light and has grain stronger than the canvas noise floor, so
here the page is estimated everywhere, divided out, and the strokes are told from the grain by a
threshold set on the image's own statistics, with hysteresis: fainter ink that runs on from a stroke
(a fine or light pen beside a bold one, a blurred edge) is kept, and each stroke is scaled by its own
darkness.
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
# Fainter ink (a thin or light stroke beside bold ones) is kept where it runs on from a stroke: above
# this many grain spreads, or this share of the stroke threshold.
WEAK_SPREADS = 3.5
WEAK_SHARE = 0.4
# A stroke's core: this share of its own darkest contrast reads as full ink.
CORE = 0.8
# Ink lying wholly within this share of the shorter side from the picture's edge is the page's edge, the
# table or a streak of the lens, not writing: a digit written there would be cut off by the frame anyway.
EDGE_BAND = 0.04


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


def _along_edge(stats, shape):
    """For each component's stats row, whether its box lies wholly within EDGE_BAND of one picture edge."""
    height, width = shape
    band = EDGE_BAND * min(height, width)
    left, top = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    right, bottom = left + stats[:, cv2.CC_STAT_WIDTH], top + stats[:, cv2.CC_STAT_HEIGHT]
    return (right <= band) | (bottom <= band) | (left >= width - band) | (top >= height - band)


def photo_ink(gray):
    """Return ink strength 0..1 (white on black) of a photographed page, with grain and specks removed."""
    page = _page(gray)
    contrast = np.clip(1.0 - gray / np.maximum(page, 1e-3), 0.0, 1.0).astype(np.float32)
    # Most pixels are paper: their median and spread measure the grain; Otsu splits strokes from paper.
    centre = float(np.median(contrast))
    spread = 1.4826 * float(np.median(np.abs(contrast - centre)))
    otsu, _ = cv2.threshold(np.round(contrast * 255).astype(np.uint8), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    threshold = max(otsu / 255.0, centre + 6.0 * spread, 0.08)
    strong = contrast > threshold
    if not strong.any():
        return np.zeros_like(contrast)
    # Hysteresis: Otsu's threshold is set by the boldest strokes; a thin or light one (a 0 drawn finely
    # beside a bold 5) may reach it only in places, so keep the fainter ink connected to those places.
    weak = contrast > max(centre + WEAK_SPREADS * spread, WEAK_SHARE * threshold)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(weak.astype(np.uint8), connectivity=8)
    seeded = np.zeros(count, bool)
    seeded[labels[strong]] = True
    seeded[0] = False
    areas = stats[:, cv2.CC_STAT_AREA]
    keep = seeded & (areas >= max(3, SPECK_FRACTION * areas[seeded].max())) & ~_along_edge(stats, gray.shape)
    labels[~keep[labels]] = 0
    strokes = labels > 0
    # Each stroke's core reads 1, like a canvas pen, however dark its own ink; the soft edge fades out.
    darkest = np.zeros(count, np.float32)
    np.maximum.at(darkest, labels[strokes], contrast[strokes])
    floor = 0.5 * WEAK_SHARE * threshold
    near = cv2.dilate(labels.astype(np.float32), np.ones((3, 3), np.uint8)).astype(np.int32)
    peak = np.maximum(CORE * darkest[near], floor + 1e-3)
    ink = np.clip((contrast - floor) / (peak - floor), 0.0, 1.0)
    ink[near == 0] = 0.0
    return ink.astype(np.float32)
