"""Gather tables for the one-kernel small CNN (``kernels.small_net``): dense and conv layers as taps.

A tap layer computes output ``j`` at pooling-window position ``p`` as ``sum_t h[idx[p, t, j]] *
w[p, t, j]`` over the flattened (C, H, W) input ``h``. Here the geometry becomes those tables, once
at plan time, in numpy: a dense layer reads every input once; a conv lists, for each output pixel
(ordered as the pooled map [O, HP, WP], one table per window position), the ``cg * kh * kw`` input
cells its kernel covers, with index 0 and weight 0 where the tap falls in the padding.
"""

from __future__ import annotations

import numpy as np

from vcompute.kernels._checks import conv_out_size


def dense_taps(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(idx, weight) [1, K, N] of ``x @ w`` for an int64 weight ``w`` [K, N]."""
    k, n = w.shape
    idx = np.broadcast_to(np.arange(k, dtype=np.int64)[:, None], (k, n))
    return idx[None].copy(), np.asarray(w, dtype=np.int64)[None].copy()


def _pooled_size(w_shape: tuple[int, ...], chw: tuple[int, int, int], stride: tuple[int, int],
                 pads: tuple[int, int, int, int], pool: tuple[int, int] | None) -> tuple[int, int]:
    """(HP, WP): the conv's output size after the non-overlapping ``pool`` (floor; 0 if none fits)."""
    ho = conv_out_size(chw[1], w_shape[2], stride[0], pads[0] + pads[2])
    wo = conv_out_size(chw[2], w_shape[3], stride[1], pads[1] + pads[3])
    ph, pw = pool or (1, 1)
    return max(0, ho // ph), max(0, wo // pw)


def conv_table_size(w_shape: tuple[int, ...], chw: tuple[int, int, int], stride: tuple[int, int],
                    pads: tuple[int, int, int, int], pool: tuple[int, int] | None) -> int:
    """Entries of :func:`conv_taps`'s tables (P * T * NP), from the geometry alone: checked
    before building them, since a large conv's tables would not fit in memory."""
    o, cg, kh, kw = w_shape
    ph, pw = pool or (1, 1)
    hp, wp = _pooled_size(w_shape, chw, stride, pads, pool)
    return ph * pw * cg * kh * kw * o * hp * wp


def conv_taps(w: np.ndarray, chw: tuple[int, int, int], stride: tuple[int, int], pads: tuple[int, int, int, int],
              groups: int, pool: tuple[int, int] | None) -> tuple[np.ndarray, np.ndarray, tuple[int, int, int]]:
    """(idx, weight) [P, T, O*HP*WP] and the output shape (O, HP, WP) of a 2-D conv with weight
    ``w`` [O, C/groups, kh, kw] on a (C, H, W) input, ``pads`` (top, left, bottom, right), then a
    non-overlapping ``pool`` (ph, pw) (P = ph * pw window positions; None: P = 1, no pool)."""
    o, cg, kh, kw = w.shape
    c, h, wd = chw
    sh, sw = stride
    pt, pl, pb, pr = pads
    ph, pw = pool or (1, 1)
    hp, wp = _pooled_size(w.shape, chw, stride, pads, pool)
    # output j = (oc, y, x) of the pooled map; position p = (dy, dx); tap t = (ci, r, s)
    oc, y, x = (a.reshape(-1) for a in np.meshgrid(np.arange(o), np.arange(hp), np.arange(wp), indexing="ij"))
    dy, dx = (a.reshape(-1) for a in np.meshgrid(np.arange(ph), np.arange(pw), indexing="ij"))
    ci, r, s = (a.reshape(-1) for a in np.meshgrid(np.arange(cg), np.arange(kh), np.arange(kw), indexing="ij"))
    rows = (y[None, None, :] * ph + dy[:, None, None]) * sh - pt + r[None, :, None]  # [P, T, NP]
    cols = (x[None, None, :] * pw + dx[:, None, None]) * sw - pl + s[None, :, None]
    chan = (oc // (o // groups)) * cg
    cin = chan[None, None, :] + ci[None, :, None]
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < wd)
    idx = np.where(inside, (cin * h + rows) * wd + cols, 0)
    wt = np.asarray(w, dtype=np.int64)[oc[None, None, :], ci[None, :, None], r[None, :, None], s[None, :, None]]
    wt = np.where(inside, wt, 0)
    p, t, n = ph * pw, cg * kh * kw, o * hp * wp
    return (np.broadcast_to(idx, (p, t, n)).astype(np.int64), np.broadcast_to(wt, (p, t, n)).astype(np.int64),
            (o, hp, wp))


__all__ = ["conv_table_size", "conv_taps", "dense_taps"]
