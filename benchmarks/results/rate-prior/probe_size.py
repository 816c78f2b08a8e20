"""One train clip with --bpp at `medium` (or PRESET), at the coded size of rung Q or (Q = auto) of the rung
the target lands on (codec.encoder.rung_for_rate); prints where it landed.

    PYTHONPATH=. python benchmarks/results/rate-prior/probe_size.py CLIP FRAMES REDUCE Q|auto TARGET [PRESET]

(Q = auto needs 8260153's codec/encoder.py: the size choice was reverted.)
"""
import sys
import tempfile
from pathlib import Path
from benchmarks.trials import load_clip
import inspect

from codec.encoder import encode, encode_ladder

clip, fr, red, q, t = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
preset = sys.argv[6] if len(sys.argv) > 6 else 'medium'
if q == 'auto' and 'rung_from_bpp' not in inspect.signature(encode_ladder).parameters:
    raise SystemExit('Q = auto: check out codec/encoder.py of 8260153 first (the size choice was reverted)')
v = load_clip(clip, fr, red)
n, h, w, _ = v.frames.shape
with tempfile.TemporaryDirectory() as d:
    r = encode(v, Path(d) / 'o.nerv', quality=None if q == 'auto' else int(q), bpp=t, progress=False, preset=preset)
    print(Path(clip).name, preset, 'q', q, 'target', t, 'coded', r.coded_width, r.coded_height, 'bpp %.5f' % (8 * r.num_bytes / (n * h * w)), 'psnr %.2f' % r.psnr, 'lam %.3g' % r.lam, flush=True)
