"""Colour in and out of nervc, checked against the textbook YCbCr formulas, not against itself.

A round trip (write_video then read_video) cannot catch a wrong matrix or range: the same
swscale defaults undo what they did. So each direction is checked on its own against
numbers computed here from the standards (ITU-R BT.601 / BT.709, limited and full range):

* what nervc writes is decoded with PyAV and read plane by plane, with no conversion;
* what nervc reads is made outside nervc, from known Y/U/V samples with explicit tags.

The picture is 8 flat 16x16 patches (pure red, green, blue, white, black, greys and two mixed
colours); only each patch's centre is compared, because 4:2:0 chroma is interpolated across
patch edges. A swapped R/B, a wrong matrix (601 vs 709) or a wrong range is off by 15 to 100
levels on these patches; the tolerance is 2 levels (rounding, swscale's fast bilinear path).
"""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from nervcore.video_io import read_video, write_video

PATCHES = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255),
           (0, 0, 0), (128, 128, 128), (200, 100, 50), (30, 160, 220)]
H, W, S = 32, 64, 16  # 2 rows x 4 columns of S x S patches
KRKB = {"bt601": (0.299, 0.114), "bt709": (0.2126, 0.0722), "bt2020": (0.2627, 0.0593)}
TOL = 2


def centres():
    """(patch index, row, column) of every patch centre."""
    return [(i, (i // 4) * S + S // 2, (i % 4) * S + S // 2) for i in range(len(PATCHES))]


def picture(width: int = W) -> np.ndarray:
    f = np.zeros((H, width, 3), np.uint8)
    for i, c in enumerate(PATCHES):
        f[(i // 4) * S:(i // 4 + 1) * S, (i % 4) * S:(i % 4 + 1) * S] = c
    return f


def rgb_to_ycbcr(rgb, standard: str, full: bool) -> np.ndarray:
    """8-bit R'G'B' -> Y'CbCr (float), e.g. BT.601 limited: Y = 16 + 219 (0.299 R + 0.587 G +
    0.114 B) / 255, Cb = 128 + 224 (B - Y') / (2 (1 - Kb)) / 255, Cr likewise with Kr."""
    kr, kb = KRKB[standard]
    r, g, b = np.asarray(rgb, np.float64) / 255.0
    y = kr * r + (1 - kr - kb) * g + kb * b
    pb, pr = (b - y) / (2 * (1 - kb)), (r - y) / (2 * (1 - kr))
    if full:
        return np.array([255 * y, 128 + 255 * pb, 128 + 255 * pr])
    return np.array([16 + 219 * y, 128 + 224 * pb, 128 + 224 * pr])


def ycbcr_to_rgb(ycc, standard: str, full: bool) -> np.ndarray:
    """The exact inverse of ``rgb_to_ycbcr``, clipped to 0..255."""
    kr, kb = KRKB[standard]
    y, cb, cr = np.asarray(ycc, np.float64)
    if full:
        yn, pb, pr = y / 255, (cb - 128) / 255, (cr - 128) / 255
    else:
        yn, pb, pr = (y - 16) / 219, (cb - 128) / 224, (cr - 128) / 224
    r = yn + 2 * (1 - kr) * pr
    b = yn + 2 * (1 - kb) * pb
    g = (yn - kr * r - kb * b) / (1 - kr - kb)
    return np.clip(np.array([r, g, b]) * 255, 0, 255)


def raw_planes(frame: av.VideoFrame) -> list[np.ndarray]:
    """The decoded samples as stored, plane by plane (no swscale, no conversion)."""
    out = []
    for plane in frame.planes:
        rows = np.frombuffer(bytes(plane), np.uint8).reshape(plane.height, plane.line_size)
        out.append(rows[:, :plane.width * (4 if frame.format.name == "bgr0" else 1)])
    return out


def first_frame(path: Path) -> tuple[av.VideoFrame, av.video.codeccontext.VideoCodecContext]:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return next(c.decode(s)), s.codec_context


# ---------------------------------------------------------------- (a) what nervc writes

@pytest.mark.parametrize("ext,width", [("mp4", W), ("y4m", W), ("mp4", W + 1), ("y4m", W + 1)],
                         ids=["mp4", "y4m", "mp4-odd-width", "y4m-odd-width"])
def test_written_yuv_is_bt601_limited(tmp_path, ext, width):
    """mp4 (H.264) and y4m outputs hold BT.601 limited-range samples (y4m 4:4:4 at odd sizes,
    mp4 padded to an even size and 4:2:0), as the textbook formulas give them, and say so in
    their range tag."""
    p = tmp_path / f"p.{ext}"
    write_video(p, np.stack([picture(width)] * 2), Fraction(25), width, H)
    frame, ctx = first_frame(p)
    assert frame.format.name == ("yuv420p" if width % 2 == 0 or ext == "mp4" else "yuv444p")
    assert frame.width == (width + width % 2 if ext == "mp4" else width)
    y, u, v = raw_planes(frame)
    sub = 2 if frame.format.name == "yuv420p" else 1
    for i, r, c in centres():
        want = rgb_to_ycbcr(PATCHES[i], "bt601", full=False)
        got = np.array([y[r, c], u[r // sub, c // sub], v[r // sub, c // sub]], np.float64)
        assert np.abs(got - want).max() <= TOL, (PATCHES[i], got, want.round(1))
    assert frame.color_range == av.video.reformatter.ColorRange.MPEG


def test_mp4_says_bt601(tmp_path):
    """Untagged H.264 is shown with BT.709 by most players once the picture is HD: the mp4
    must name the matrix it was written with, or HD decodes play with shifted colours."""
    p = tmp_path / "p.mp4"
    write_video(p, np.stack([picture()] * 2), Fraction(25), W, H)
    frame, ctx = first_frame(p)
    bt601 = {5, 6}  # AVCOL_SPC_BT470BG, AVCOL_SPC_SMPTE170M: the same BT.601 matrix
    assert int(ctx.colorspace) in bt601 and int(frame.colorspace) in bt601


def test_mkv_is_lossless_rgb_in_bgr_order(tmp_path):
    """The mkv output stores RGB itself (FFV1 bgr0): no matrix at all, exact samples, and the
    bytes in B, G, R order, read here straight from the plane."""
    p = tmp_path / "p.mkv"
    write_video(p, np.stack([picture()] * 2), Fraction(25), W, H)
    frame, _ = first_frame(p)
    assert frame.format.name == "bgr0"
    (packed,) = raw_planes(frame)
    bgr = packed.reshape(H, W, 4)[..., :3]
    assert np.array_equal(bgr[..., ::-1], picture())


# ---------------------------------------------------------------- (b) what nervc reads

def _yuv_picture(standard: str, full: bool) -> tuple[np.ndarray, list[np.ndarray]]:
    """A packed yuv420p array of the patches, and the integer Y/Cb/Cr of each patch."""
    y = np.zeros((H, W), np.uint8)
    u = np.zeros((H // 2, W // 2), np.uint8)
    v = np.zeros_like(u)
    samples = []
    for i, c in enumerate(PATCHES):
        ycc = np.clip(np.round(rgb_to_ycbcr(c, standard, full)), 0, 255).astype(np.uint8)
        samples.append(ycc)
        r0, c0 = (i // 4) * S, (i % 4) * S
        y[r0:r0 + S, c0:c0 + S] = ycc[0]
        u[r0 // 2:(r0 + S) // 2, c0 // 2:(c0 + S) // 2] = ycc[1]
        v[r0 // 2:(r0 + S) // 2, c0 // 2:(c0 + S) // 2] = ycc[2]
    return np.concatenate([y, u.reshape(H // 4, W), v.reshape(H // 4, W)]), samples


SPACE = {"bt601": 6, "bt709": 1, "bt2020": 9}  # AVColorSpace: SMPTE170M, BT709, BT2020_NCL
SOURCES = [  # (id, container, codec, options, standard, full range, tag the stream?, pix_fmt)
    ("ffv1-bt601-limited", "mkv", "ffv1", {}, "bt601", False, True, "yuv420p"),
    ("ffv1-bt709-limited", "mkv", "ffv1", {}, "bt709", False, True, "yuv420p"),
    ("ffv1-bt601-full", "mkv", "ffv1", {}, "bt601", True, True, "yuv420p"),
    ("ffv1-bt709-full", "mkv", "ffv1", {}, "bt709", True, True, "yuv420p"),
    ("x264-bt709-limited", "mp4", "libx264", {"qp": "0"}, "bt709", False, True, "yuv420p"),
    ("x264-bt2020-limited", "mp4", "libx264", {"qp": "0"}, "bt2020", False, True, "yuv420p"),
    ("x264-yuvj420p-full", "mp4", "libx264", {"qp": "0"}, "bt601", True, False, "yuvj420p"),
    # untagged: FFmpeg's (and nervc's) convention is BT.601 limited
    ("ffv1-untagged", "mkv", "ffv1", {}, "bt601", False, False, "yuv420p"),
]


@pytest.mark.parametrize("container,codec,options,standard,full,tagged,pix_fmt",
                         [s[1:] for s in SOURCES], ids=[s[0] for s in SOURCES])
def test_read_video_applies_the_tagged_matrix_and_range(tmp_path, container, codec, options,
                                                        standard, full, tagged, pix_fmt):
    """Streams made outside nervc from known Y/U/V samples come back as the RGB the standard
    inverse formulas give for those samples."""
    packed, samples = _yuv_picture(standard, full)
    p = tmp_path / f"src.{container}"
    with av.open(str(p), "w") as c:
        s = c.add_stream(codec, rate=25, options=options)
        s.width, s.height, s.pix_fmt = W, H, pix_fmt
        if tagged:
            s.codec_context.colorspace = SPACE[standard]
            s.codec_context.color_range = 2 if full else 1
        for _ in range(2):
            f = av.VideoFrame.from_ndarray(packed, format="yuv420p")
            if pix_fmt == "yuvj420p":  # the same bytes, in the full-range pixel format
                j = av.VideoFrame(W, H, "yuvj420p")
                for k in range(3):
                    j.planes[k].update(f.planes[k])
                f = j
            if tagged:
                f.colorspace, f.color_range = SPACE[standard], (2 if full else 1)
            for pkt in s.encode(f):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)
    stored, _ = first_frame(p)  # the source really holds the samples we meant (qp 0, ffv1)
    assert np.array_equal(stored.to_ndarray(format=stored.format.name)[:H], packed[:H])

    rgb = read_video(p).frames[0].astype(np.float64)
    for i, r, c in centres():
        want = ycbcr_to_rgb(samples[i], standard, full)
        assert np.abs(rgb[r, c] - want).max() <= TOL, (standard, full, PATCHES[i], rgb[r, c], want.round(1))
