"""One train clip with --bpp at `medium`, at the coded size of rung Q or (Q = auto) of the rung
the target lands on (codec.encoder.rung_for_rate); prints where it landed.

    PYTHONPATH=. python benchmarks/results/rate-prior/probe_size.py CLIP FRAMES REDUCE Q|auto TARGET
"""
import sys
import tempfile
from pathlib import Path
from benchmarks.trials import load_clip
from codec.encoder import encode
clip, fr, red, q, t = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
v = load_clip(clip, fr, red)
n, h, w, _ = v.frames.shape
with tempfile.TemporaryDirectory() as d:
    r = encode(v, Path(d) / 'o.nerv', quality=None if q == 'auto' else int(q), bpp=t, progress=False, preset='medium')
    print(Path(clip).name, 'q', q, 'target', t, 'coded', r.coded_width, r.coded_height, 'bpp %.5f' % (8 * r.num_bytes / (n * h * w)), 'psnr %.2f' % r.psnr, 'lam %.3g' % r.lam, flush=True)
