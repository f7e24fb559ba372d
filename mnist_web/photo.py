"""Ink from photos of handwriting on paper: uneven light, shadows, grain and JPEG noise.

A canvas drawing has one flat page colour, which extract_ink reads off the border. A photographed page
darkens towards a shadow, varies with the light and has grain stronger than the canvas noise floor, so
here the page is estimated everywhere, divided out, and the strokes are told from the grain by a
threshold set on the image's own statistics, with hysteresis: fainter ink that runs on from a stroke
(a fine or light pen beside a bold one, a blurred edge) is kept, and each stroke is scaled by its own
darkness. Where a table, a desk or the black corners of a straightened picture show around the sheet,
only the sheet is read.
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
# Strips and lines along the picture's edge that are not writing either (_edge_marks says which).
STRIP_ALONG = 0.3
STRIP_DEEP = 0.2
STRIP_INSIDE = 0.1
LINE = 0.05
LINE_ALONG = 0.6
LINE_PIECE = 0.02
# The sheet of paper, where a table, a desk or the black corners of a straightened picture show around it.
# Its edge is a step in brightness (strokes closed over with a window of PAPER_CLOSING_FRACTION of the reduced
# copy's longest side: wider than a stroke, narrower than a strip of table) of more than PAPER_EDGE of the
# brightness per pixel; a soft shadow's edge changes by about 1 % per pixel at most.
PAPER_EDGE = 0.03
PAPER_CLOSING_FRACTION = 0.02
# The sheet is the convex hull of the brightest region of at least PAPER_AT_LEAST of the picture that no step
# crosses and of every region of at least SURFACE of it at least SHADOW as bright (the sheet beyond a hard
# shadow's edge); darker regions are not the sheet, and PAPER_MARGIN of the reduced copy's longest side inside
# the sheet's edge is still the edge. A sheet leaving less than NOT_PAPER of the picture is taken to fill it.
PAPER_AT_LEAST = 0.1
SHADOW = 0.6
# Lit regions of at least this share of the picture have their page brightness estimated on their own.
SURFACE = 0.01
PAPER_MARGIN = 0.01
NOT_PAPER = 0.01


def _reduced(gray):
    """The picture reduced to BACKGROUND_SIDE on its longest side (or as it is, if smaller)."""
    height, width = gray.shape
    factor = max(1.0, max(height, width) / BACKGROUND_SIDE)
    size = (max(1, round(width / factor)), max(1, round(height / factor)))
    return cv2.resize(gray, size, interpolation=cv2.INTER_AREA)


def _closed(small, fraction):
    """Dark strokes closed over on the reduced copy, with a round window of `fraction` of its longest side."""
    side = 2 * max(1, round(fraction * max(small.shape) / 2)) + 1
    return cv2.morphologyEx(small, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))), side


def _page_and_paper(gray, small, surfaces):
    """(the paper's brightness at every pixel, the sheet of paper as a mask or None where it fills the picture),
    from the picture, its reduced copy and that copy's _surfaces.

    Where a sharp step in brightness (the sheet's edge, a hard shadow's) divides the picture, each side's
    brightness is estimated from its own pixels only, so that the step reads as no ink; a dark desk beside the
    sheet is left out altogether.
    """
    height, width = gray.shape
    labels, lit, paper = surfaces
    if paper is None and len(lit) < 2:
        closed, side = _closed(small, CLOSING_FRACTION)
        page = cv2.GaussianBlur(closed, (0, 0), side / 2)
    else:
        page = _page_by_surface(small, labels, lit)
    if paper is not None:
        paper = cv2.resize(paper.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST) > 0
    return cv2.resize(page, (width, height), interpolation=cv2.INTER_LINEAR), paper


def _page_by_surface(small, labels, lit):
    """The page's brightness on the reduced copy, each pixel's from the lit surface nearest to it alone."""
    # Each pixel's nearest lit surface: distances to the surfaces' pixels, labelled pixel by pixel (in raster order).
    sites = ~np.isin(labels, lit)
    _, nearest = cv2.distanceTransformWithLabels(sites.astype(np.uint8), cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL)
    nearest = labels[~sites][nearest - 1]
    page = np.zeros_like(small)
    for surface in lit:
        own = labels == surface
        # Closed over and smoothed as one page, the pixels beyond it standing in at its mean brightness.
        closed, side = _closed(np.where(own, small, small[own].mean()).astype(np.float32), CLOSING_FRACTION)
        weight = own.astype(np.float32)
        share = np.maximum(cv2.GaussianBlur(weight, (0, 0), side / 2), 1e-3)
        mine = nearest == surface
        page[mine] = (cv2.GaussianBlur(closed * weight, (0, 0), side / 2) / share)[mine]
    return page


def _surfaces(small):
    """(labels of the reduced picture's flat regions, the labels of the lit surfaces, the sheet or None).

    The flat regions are those no sharp step in brightness crosses (label 0 is the steps). The lit surfaces
    are the large ones at least SHADOW as bright as the brightest (the sheet, its parts beyond a hard shadow,
    a light desk); the sheet is where they, the steps between them and the holes in them are, or None where
    that fills the picture.
    """
    closed, _ = _closed(small, PAPER_CLOSING_FRACTION)
    step = np.hypot(cv2.Sobel(closed, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(closed, cv2.CV_32F, 0, 1, ksize=3))
    flat = (step / 8.0 < PAPER_EDGE * np.maximum(closed, 1e-3)).astype(np.uint8)
    # The picture's own edge bounds every region: a sheet running out of the frame must not join the table
    # along the outermost pixels, where the derivative sees no step.
    flat[[0, -1], :] = 0
    flat[:, [0, -1]] = 0
    count, labels, stats, _ = cv2.connectedComponentsWithStats(flat, connectivity=4)
    areas = stats[:, cv2.CC_STAT_AREA]
    brightness = np.bincount(labels.ravel(), weights=closed.ravel(), minlength=count) / np.maximum(areas, 1)
    large = np.flatnonzero(areas >= PAPER_AT_LEAST * closed.size)
    large = large[large > 0]
    if not len(large):
        return labels, np.zeros(0, np.int32), None
    bright = brightness >= SHADOW * brightness[large].max()
    bright[0] = False
    lit = np.flatnonzero(bright & (areas >= SURFACE * closed.size))
    # The sheet is convex: the hull of its lit parts also holds the steps between them (a hard shadow's edge, a
    # bold stroke across it) and its holes, and leaves out the desk around it.
    paper = np.zeros(closed.shape, np.uint8)
    cv2.fillConvexPoly(paper, cv2.convexHull(cv2.findNonZero(np.isin(labels, lit).astype(np.uint8))), 1)
    paper = paper > 0
    # The picture's outermost pixels (never flat) are the sheet's where the pixels inside them are.
    paper[[0, -1], :], paper[:, [0, -1]] = paper[[1, -2], :], paper[:, [1, -2]]
    if paper.mean() >= 1 - NOT_PAPER:
        return labels, lit, None
    margin = 2 * max(1, round(PAPER_MARGIN * max(closed.shape))) + 1
    # Eroded from the desk's side only: erosion leaves the picture's own edge alone.
    return labels, lit, cv2.erode(paper.astype(np.uint8), np.ones((margin, margin), np.uint8)) > 0


def sheet_of_paper(small):
    """The sheet of paper in a reduced picture, as a boolean mask; None where it fills the picture."""
    return _surfaces(small)[2]


def looks_like_photo(gray):
    """True when the page's edge is unevenly lit or grainy, as a photo's is and a canvas drawing's never is,
    or when the picture shows a sheet of paper with something else around it."""
    return _is_photo(gray, sheet_of_paper(_reduced(gray)))


def ink_if_photo(gray):
    """photo_ink of a picture that looks_like_photo, else None; the sheet is looked for once, for both."""
    small = _reduced(gray)
    surfaces = _surfaces(small)
    if not _is_photo(gray, surfaces[2]):
        return None
    return photo_ink(gray, small, surfaces)


def _is_photo(gray, sheet):
    return sheet is not None or _uneven_or_grainy(gray)


def _uneven_or_grainy(gray):
    """True when the picture's edge is unevenly lit or grainy, as a photo's is and a canvas drawing's never is."""
    # The edge of the picture is page (strokes rarely reach it): a canvas has one flat colour there.
    border = np.concatenate([gray[0], gray[:, -1], gray[-1, ::-1], gray[::-1, 0]]).astype(np.float32)
    window = max(5, len(border) // 100) | 1
    trend = cv2.medianBlur(np.round(border * 255).astype(np.uint8).reshape(1, -1), window).ravel() / 255.0
    light = float(np.percentile(trend, 95) - np.percentile(trend, 5))
    grain = float(np.median(np.abs(border - trend)))
    return light > UNEVEN_LIGHT or grain > GRAIN


def _edge_marks(labels, stats):
    """For each ink component (labels and stats of connectedComponentsWithStats), whether it is the picture's
    edge rather than writing.

    That is ink lying wholly within EDGE_BAND of one edge of the picture; ink that touches the edge, runs
    along it for at least STRIP_ALONG of its length and lies almost all (all but STRIP_INSIDE of it) within
    STRIP_DEEP of the edges (the desk beside a sheet, where it is as bright as the sheet's shaded side); and a
    line within STRIP_DEEP of an edge, along it, at least LINE_ALONG of the picture long and at most LINE of it
    thick (the sheet's own edge: even a 1 written so long is thicker or stands further in).
    """
    height, width = labels.shape
    band = EDGE_BAND * min(height, width)
    left, top = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    wide, tall = stats[:, cv2.CC_STAT_WIDTH], stats[:, cv2.CC_STAT_HEIGHT]
    right, bottom = left + wide, top + tall
    near = (right <= band) | (bottom <= band) | (left >= width - band) | (top >= height - band)
    deep_rows, deep_cols = round(STRIP_DEEP * height), round(STRIP_DEEP * width)
    touching = (left == 0) | (top == 0) | (right == width) | (bottom == height)
    long = (wide >= STRIP_ALONG * width) | (tall >= STRIP_ALONG * height)
    inside = labels[deep_rows : height - deep_rows, deep_cols : width - deep_cols]
    deep = np.bincount(inside.ravel(), minlength=len(stats))
    lying = _line_pieces(left, wide, top, tall, width, height, (bottom <= deep_rows) | (top >= height - deep_rows))
    standing = _line_pieces(top, tall, left, wide, height, width, (right <= deep_cols) | (left >= width - deep_cols))
    return near | lying | standing | (touching & long & (deep <= STRIP_INSIDE * stats[:, cv2.CC_STAT_AREA]))


def _line_pieces(start, length, across, thickness, along_side, across_side, near_edge):
    """Which components are pieces of one thin line near an edge (each at least LINE_PIECE of the picture long,
    centred across it within LINE of each other), together at least LINE_ALONG of the picture long: the sheet's
    own edge, however broken. The arguments are along, then across, the line."""
    thin = near_edge & (thickness <= LINE * across_side) & (length >= LINE_PIECE * along_side)
    centre = across + thickness / 2
    found = np.zeros(len(start), bool)
    for k in np.flatnonzero(thin):
        # The pieces centred within LINE of the picture of this one's centre, across the line.
        same = thin & (np.abs(centre - centre[k]) <= LINE * across_side)
        covered = np.zeros(along_side, bool)
        for j in np.flatnonzero(same):
            covered[start[j] : start[j] + length[j]] = True
        found[k] = covered.sum() >= LINE_ALONG * along_side
    return found


def photo_ink(gray, small, surfaces):
    """Ink strength 0..1 (white on black) of a photographed page, with grain and specks removed, given the
    picture's reduced copy and that copy's _surfaces."""
    page, paper = _page_and_paper(gray, small, surfaces)
    contrast = np.clip(1.0 - gray / np.maximum(page, 1e-3), 0.0, 1.0).astype(np.float32)
    on_paper = contrast if paper is None else contrast[paper]
    if paper is not None:
        contrast[~paper] = 0.0
    # Most pixels are paper: their median and spread measure the grain; Otsu splits strokes from paper.
    centre = float(np.median(on_paper))
    spread = 1.4826 * float(np.median(np.abs(on_paper - centre)))
    otsu, _ = cv2.threshold(
        np.round(on_paper * 255).astype(np.uint8).reshape(1, -1), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU
    )
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
    writing = seeded & ~_edge_marks(labels, stats)
    if not writing.any():
        return np.zeros_like(contrast)
    keep = writing & (areas >= max(3, SPECK_FRACTION * areas[writing].max()))
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
