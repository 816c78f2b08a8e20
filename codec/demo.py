"""``nervc demo``: encode and decode the bundled clip, print bytes, bpp, PSNR and times, and (with
``--keep DIR``) write a side-by-side PNG of one frame so a person can look."""
from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path

from codec.cli import _Parser, _check_bounds, _frames
from nervcore.errors import NervcError

SIDE_BY_SIDE_FRAME = 60  # the demo's look at one frame: carphone's face mid-clip


def main(argv: list[str]) -> int:
    """Encode and decode the bundled clip; print PSNR, bpp and times."""
    from codec.decoder import decode
    from codec.encoder import encode
    from codec.metrics import rgb_psnr
    from codec.ladder import QUALITY_LEVELS
    from nervcore.video_io import read_video, write_side_by_side, write_video

    p = _Parser(prog="nervc demo", description="Encode + decode the bundled clip.")
    p.add_argument("--frames", default=None, help="frame range (default: all 120 frames)")
    p.add_argument("-q", "--quality", type=int, default=None, choices=QUALITY_LEVELS)
    p.add_argument("--steps", type=int, default=None, help="fine-tuning steps (default: the encoder's)")
    p.add_argument("--keep", help="folder to keep demo.nerv and demo.mp4 in")
    a = p.parse_args(argv)
    _check_bounds(a, {"steps": ("[]", 0, math.inf)})
    clip = Path(__file__).resolve().parent / "data" / "carphone_qcif_120f.mp4"
    # everything that can be wrong with the options fails before the --keep folder is made
    video = read_video(clip, frames=_frames(a.frames))
    if a.keep and Path(a.keep).exists() and not Path(a.keep).is_dir():
        raise NervcError(f"--keep {a.keep}: exists and is not a directory")
    work = Path(a.keep) if a.keep else Path(tempfile.mkdtemp(prefix="nervc-demo-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        print(f"demo: {clip.name}, {video.num_frames} frames {video.width}x{video.height}")
        kw = {"quality": a.quality} if a.quality else {}
        r = encode(video, work / "demo.nerv", overwrite=True, steps=a.steps, **kw)
        d = decode(work / "demo.nerv")
        write_video(work / "demo.mp4", d.frames, d.fps, d.width, d.height, overwrite=True)
        look = min(SIDE_BY_SIDE_FRAME, video.num_frames - 1)
        write_side_by_side(work / "side_by_side.png", video.frames[look], d.frames[look])
        coded = f", coded at {r.coded_width}x{r.coded_height}" if (r.coded_width, r.coded_height) != (r.width, r.height) else ""
        print(f"encode: {r.num_bytes} bytes, {r.bpp:.4f} bpp, {r.encode_seconds:.1f} s (init {r.init}{coded})")
        print(f"decode: {d.decode_seconds:.2f} s ({d.fps_decoded:.1f} fps on {d.device})")
        print(f"PSNR (RGB, 8-bit): {rgb_psnr(d.frames, video.frames):.2f} dB")
        if a.keep:
            print(f"kept {work / 'demo.nerv'}, {work / 'demo.mp4'} and {work / 'side_by_side.png'} "
                  f"(frame {look}: source | decoded)")
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    return 0
