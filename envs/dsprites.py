"""Procedural dSprites: the 2D-shapes data set of Higgins et al. (2017, β-VAE, Sec. 4.2 / Appendix A.4;
Matthey et al. 2017, github.com/deepmind/dsprites-dataset), drawn on demand from the factor values,
so nothing is downloaded and any factor combination costs one ``cv2.fillPoly``.

Factors, as in the original ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` (colour is always white
and therefore left out):

============  ======  ============================================================================
factor        values  meaning of value index ``i``
============  ======  ============================================================================
shape         3       0 square, 1 ellipse, 2 heart
scale         6       ``linspace(0.5, 1.0, 6)[i]`` times the full sprite size
orientation   40      ``linspace(0, 2π, 40)[i]`` radians, counter-clockwise on screen; as in the
                      original, value 0 and value 39 (0 and 2π) look the same, and the square
                      (ellipse) repeats every π/2 (π)
pos_x         32      sprite centre moves left → right with ``i``
pos_y         32      sprite centre moves top → bottom with ``i`` (image rows grow downward)
============  ======  ============================================================================

Images are ``(n, S, S, 1)`` uint8 with values in {0, 255} (white sprite on black; the original stores
{0, 1} — divide by 255 for that). ``S = 64`` by default; a smaller ``image_size`` scales the whole
sprite geometry (useful for tiny tests). Geometry (fractions of the image side ``S``): a full-size
(scale 1) square has side ``0.3·S``, the ellipse has semi-axes ``0.195·S × 0.0975·S`` (2:1), the heart
(parametric curve ``x = 16 sin³t, y = 13 cos t − 5 cos 2t − 2 cos 3t − cos 4t``) is ``0.3·S`` wide;
centres run over ``[0.21·S, 0.79·S]``, so a full-size sprite stays inside the frame (a 45°-rotated
full-size square at the extreme positions loses under a pixel at its corner). The mean pixel
intensity is ≈ 0.04 of white, close to the original's 0.0425; the exact pixels of the original are
not reproduced, so compare published metric numbers as trends, not to the third decimal. Sprites
are drawn with ``cv2.fillPoly`` at 4× resolution with sub-pixel vertices, and a pixel is white when
at least half of it is covered; the same factors always give the same bytes.
"""

from __future__ import annotations

import cv2
import numpy as np

from envs.factors import FactorDataset, register_factor_dataset

SHAPES = ("square", "ellipse", "heart")
SCALES = np.linspace(0.5, 1.0, 6)
ORIENTATIONS = np.linspace(0.0, 2.0 * np.pi, 40)
NUM_POSITIONS = 32

_SPRITE_SIZE = 0.3  # side of the full-size square, fraction of the image side
_MARGIN = 0.21  # centre range [margin, 1 − margin] of the image side
_SUBPIXEL_BITS = 4  # cv2.fillPoly ``shift``: vertex coordinates in 1/16 pixel
_CURVE_POINTS = 64  # vertices of the ellipse and heart outlines
_SUPERSAMPLE = 4  # internal resolution factor (area coverage ≥ 1/2 keeps a pixel)
_CHUNK = 256  # images drawn per internal batch (bounds the supersampled buffer to ~16 MB)


def _unit_outlines() -> list[np.ndarray]:
    """Outline of each shape at scale 1, centred on the origin, in units of the square's side.

    Returns one ``(num_vertices, 2)`` float64 array of ``(x, y)`` per shape, ``y`` pointing down
    (image convention), so the heart's lobes are at the top.
    """
    square = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]])
    t = np.linspace(0.0, 2.0 * np.pi, _CURVE_POINTS, endpoint=False)
    ellipse = np.stack([0.65 * np.cos(t), 0.325 * np.sin(t)], axis=1)
    hx = 16.0 * np.sin(t) ** 3
    hy = -(13.0 * np.cos(t) - 5.0 * np.cos(2 * t) - 2.0 * np.cos(3 * t) - np.cos(4 * t))
    heart = np.stack([hx, hy], axis=1)
    heart -= (heart.max(axis=0) + heart.min(axis=0)) / 2.0  # centre the bounding box
    heart /= np.abs(heart).max() * 2.0  # widest extent = 1 square side
    return [square, ellipse, heart]


class DSprites(FactorDataset):
    """dSprites drawn procedurally (see the module docstring for factors and geometry).

    :param image_size: side ``S`` of the square images (default 64, as the original); the sprite
        geometry scales with it. Must be at least 16.
    """

    name = "dsprites"
    factor_names = ("shape", "scale", "orientation", "pos_x", "pos_y")
    factor_sizes = (len(SHAPES), len(SCALES), len(ORIENTATIONS), NUM_POSITIONS, NUM_POSITIONS)

    def __init__(self, image_size: int = 64):
        if not isinstance(image_size, (int, np.integer)) or isinstance(image_size, bool) or image_size < 16:
            raise ValueError(f"dsprites: image_size must be an int >= 16, got {image_size!r}; use 64 for the original")
        self.image_size = int(image_size)
        self.observation_shape = (self.image_size, self.image_size, 1)
        self._outlines = _unit_outlines()
        self._positions = (_MARGIN + (1.0 - 2.0 * _MARGIN) * np.linspace(0.0, 1.0, NUM_POSITIONS)) * self.image_size

    def factor_values(self, factors: np.ndarray) -> dict[str, np.ndarray]:
        """Physical values of factor indices ``(n, 5)``: shape name, scale, orientation (rad), centre x/y (px)."""
        factors = self.validate_factors(factors)
        return {
            "shape": np.asarray(SHAPES)[factors[:, 0]],
            "scale": SCALES[factors[:, 1]],
            "orientation": ORIENTATIONS[factors[:, 2]],
            "pos_x": self._positions[factors[:, 3]],
            "pos_y": self._positions[factors[:, 4]],
        }

    def images(self, factors: np.ndarray) -> np.ndarray:
        """Render factor indices ``(n, 5)`` int → images ``(n, S, S, 1)`` uint8 in {0, 255}."""
        factors = self.validate_factors(factors)
        out = np.empty((len(factors), self.image_size, self.image_size), dtype=np.uint8)
        for start in range(0, len(factors), _CHUNK):
            out[start:start + _CHUNK] = self._render(factors[start:start + _CHUNK])
        return out[..., None]

    def _render(self, factors: np.ndarray) -> np.ndarray:
        """``(m, 5)`` validated factors → ``(m, S, S)`` uint8: draw at ``_SUPERSAMPLE``× and keep a pixel
        when at least half of it is covered, so thin corners and tilted edges look like area coverage."""
        m, k = len(factors), _SUPERSAMPLE
        big = np.zeros((m, self.image_size * k, self.image_size * k), dtype=np.uint8)
        size = _SPRITE_SIZE * self.image_size * k * SCALES[factors[:, 1]]  # (m,) pixels per square side
        angle = ORIENTATIONS[factors[:, 2]]
        # Counter-clockwise on screen with y pointing down: rotate by −angle in (x, y-down) coordinates.
        cos, sin = np.cos(angle), np.sin(angle)
        rotation = np.stack([np.stack([cos, sin], -1), np.stack([-sin, cos], -1)], -2)  # (m, 2, 2)
        # cv2 puts pixel centres at integer coordinates; ours are at +0.5.
        centre = np.stack([self._positions[factors[:, 3]], self._positions[factors[:, 4]]], -1) * k - 0.5  # (m, 2)
        one = np.float64(1 << _SUBPIXEL_BITS)
        for shape_index, outline in enumerate(self._outlines):
            rows = np.flatnonzero(factors[:, 0] == shape_index)
            if rows.size == 0:
                continue
            # (r, V, 2) vertex coordinates of every sprite of this shape, all at once.
            verts = np.einsum("mij,vj->mvi", rotation[rows], outline) * size[rows, None, None] + centre[rows, None, :]
            fixed = np.round(verts * one).astype(np.int32)
            for row, poly in zip(rows, fixed):
                cv2.fillPoly(big[row], [poly], 1, lineType=cv2.LINE_8, shift=_SUBPIXEL_BITS)
        s = self.image_size
        coverage = np.zeros((m, s, s), dtype=np.uint8)  # covered sub-pixels, 0..k² (strided adds beat reshape-sum)
        for dy in range(k):
            for dx in range(k):
                coverage += big[:, dy::k, dx::k]
        return np.where(2 * coverage >= k * k, 255, 0).astype(np.uint8)


@register_factor_dataset("dsprites")
def _make_dsprites(image_size: int = 64) -> DSprites:
    return DSprites(image_size=image_size)
