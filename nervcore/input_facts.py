"""What an input holds that nervc's frames (8-bit RGB at one frame rate) cannot, in one line each.

nervc reads every source into ``uint8 [N, H, W, 3]`` RGB at one frame rate. What that drops
is named when the source is opened, as ``(level, text)`` pairs (:mod:`nervcore.messages`
prints them; the encoder does, once per encode):

* a display matrix (a phone's portrait clip): **applied**, the frames come out as players show
  them (:class:`Orientation`); a rotation that is not a multiple of 90° is named, not applied;
* more than 8 bits per sample, an alpha channel, HDR or wide-gamut colour tags, a non-square
  sample aspect ratio, audio streams: named (:func:`conversion_notes`);
* timestamps a constant rate cannot reproduce (variable frame rate): a warning naming both
  spans (:func:`timing_warning`).
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

Message = tuple[str, str]  # (level, text): "note" | "warning", one line

HDR_TRANSFERS = {16: "PQ", 18: "HLG"}  # AVColorTransferCharacteristic: SMPTE ST 2084, ARIB STD-B67
WIDE_PRIMARIES = {9: "BT.2020", 11: "DCI-P3", 12: "Display P3"}  # AVColorPrimaries


@dataclass(frozen=True)
class Orientation:
    """How to turn stored frames into displayed ones: transpose first, then the flips."""

    transpose: bool = False
    hflip: bool = False  # mirror left-right
    vflip: bool = False  # mirror top-bottom

    @property
    def identity(self) -> bool:
        return not (self.transpose or self.hflip or self.vflip)

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        """``[H, W, C]`` stored -> displayed (a view; the caller copies when it keeps it)."""
        if self.transpose:
            rgb = rgb.transpose(1, 0, 2)
        if self.hflip:
            rgb = rgb[:, ::-1]
        if self.vflip:
            rgb = rgb[::-1]
        return rgb

    def describe(self) -> str:
        return {(True, True, False): "rotated 90° clockwise",
                (True, False, True): "rotated 90° counter-clockwise",
                (False, True, True): "rotated 180°",
                (False, True, False): "mirrored left-right",
                (False, False, True): "mirrored top-bottom",
                (True, False, False): "transposed (mirrored across the diagonal)",
                (True, True, True): "transposed across the anti-diagonal"}[
            (self.transpose, self.hflip, self.vflip)]


def display_matrix(frame) -> np.ndarray | None:
    """The frame's 3x3 display matrix (FFmpeg's layout, 16.16 fixed point), or None."""
    try:
        from av.sidedata.sidedata import Type
        sd = frame.side_data.get(Type.DISPLAYMATRIX)
    except (AttributeError, ImportError, KeyError, ValueError):
        return None
    if sd is None or sd.buffer_size != 36:
        return None
    return np.frombuffer(bytes(sd), np.int32).astype(np.float64)


def orientation(frame, name: str) -> tuple[Orientation, list[Message]]:
    """What the frame's display matrix asks for, and the note saying so.

    FFmpeg's matrix maps a stored pixel (x, y) to ``x' = a x + c y``, ``y' = b x + d y``
    (``a, b, c, d`` = entries 0, 1, 3, 4): with ``a = d = 0`` the picture is transposed and
    mirrored where ``c`` (columns) or ``b`` (rows) is negative; with ``b = c = 0`` mirrored
    where ``a`` or ``d`` is. This is what ``ffmpeg``'s autorotate does.
    """
    m = display_matrix(frame)
    if m is None:
        return Orientation(), []
    a, b, c, d = m[0], m[1], m[3], m[4]
    scale = max(abs(a), abs(b), abs(c), abs(d))
    if scale == 0:
        return Orientation(), []
    tol = 1e-3 * scale
    if abs(a) < tol and abs(d) < tol:
        o = Orientation(True, c < 0, b < 0)
    elif abs(b) < tol and abs(c) < tol:
        o = Orientation(False, a < 0, d < 0)
    else:
        degrees = -np.degrees(np.arctan2(b, a))  # counter-clockwise, as FFmpeg reports it
        return Orientation(), [("note", f"{name}: display rotation of {degrees:.0f}° not applied "
                                        "(only multiples of 90° are)")]
    if o.identity:
        return o, []
    w, h = frame.width, frame.height
    shown = f"{h}x{w}" if o.transpose else f"{w}x{h}"
    return o, [("note", f"{name}: display matrix applied: the {w}x{h} frames are {o.describe()} "
                        f"to {shown}, as players show them")]


def conversion_notes(name: str, frame, sample_aspect: Fraction | None = None,
                     audio_streams: int = 0) -> list[Message]:
    """One note per lossy conversion of reading ``frame`` (the source's first, as decoded) into
    8-bit RGB: bit depth, alpha, HDR / wide-gamut colour, sample aspect ratio, audio."""
    notes: list[Message] = []
    comps = list(frame.format.components)
    bits = max((c.bits for c in comps), default=8)
    if bits > 8:
        notes.append(("note", f"{name}: {bits}-bit input stored as 8-bit"))
    if any(c.is_alpha for c in comps):
        notes.append(("note", f"{name}: alpha channel dropped (nervc stores RGB only)"))
    trc = HDR_TRANSFERS.get(_int(frame.color_trc))
    prim = WIDE_PRIMARIES.get(_int(frame.color_primaries))
    if trc:
        tags = ", ".join(t for t in (trc, prim) if t)
        notes.append(("note", f"{name}: HDR input ({tags}) coded as BT.601 SDR without tone mapping: "
                              "colours and brightness will look wrong"))
    elif prim:
        notes.append(("note", f"{name}: {prim} colour coded as BT.601 SDR without gamut mapping: "
                              "colours will look wrong"))
    if sample_aspect and sample_aspect > 0 and sample_aspect != 1:
        w, h = frame.width, frame.height
        notes.append(("note", f"{name}: sample aspect ratio {sample_aspect.numerator}:"
                              f"{sample_aspect.denominator} dropped: the {w}x{h} frames are meant to "
                              f"show as {round(w * sample_aspect)}x{h} and will show as {w}x{h} "
                              "(scale to square pixels first to keep the shape)"))
    if audio_streams:
        s = "s" if audio_streams > 1 else ""
        notes.append(("note", f"{name}: {audio_streams} audio stream{s} not stored (nervc codes the "
                              "picture only)"))
    return notes


def timing_warning(name: str, pts: list[int] | None, time_base: Fraction | None,
                   fps: Fraction) -> list[Message]:
    """A warning when the frames' timestamps are not those of ``fps``, the one rate stored.

    Jitter is not variable frame rate: the stream is flagged when the timestamps stray from
    the constant-rate ones by more than one frame interval (and two ticks) in all, so a
    recording whose clock wobbles by a millisecond is left alone and one whose frames bunch
    up or stall is named.
    """
    if not pts or len(pts) < 3 or time_base is None or fps <= 0:
        return []
    t = np.sort(np.asarray(pts, np.float64)) * float(time_base)
    dev = t - np.arange(len(t)) / float(fps)
    if dev.max() - dev.min() <= max(1.0 / float(fps), 2.0 * float(time_base)):
        return []
    span, flat = t[-1] - t[0], (len(t) - 1) / float(fps)
    return [("warning", f"{name}: variable frame rate: its {len(t)} frames span {span:.2f} s; stored "
                        f"at a constant {float(fps):.4g} fps they span {flat:.2f} s (to keep the "
                        "timing, resample first: ffmpeg -i IN -fps_mode cfr -r RATE OUT)")]


def _int(v) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return -1
