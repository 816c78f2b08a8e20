"""``nervc info``: what a ``.nerv`` file holds, section by section (``--json`` for scripts)."""
from __future__ import annotations

import math

from codec.cli import _Parser


def main(argv: list[str]) -> int:
    import json

    from bitstreams import BitstreamReader

    p = _Parser(prog="nervc info", description="Describe a .nerv bitstream section by section.")
    p.add_argument("input")
    p.add_argument("--json", action="store_true", help="one JSON object (for scripts) instead of lines")
    a = p.parse_args(argv)
    d = stream_info(BitstreamReader(a.input), a.input)
    if a.json:
        print(json.dumps(d, indent=1))
        return 0
    v, m = d["video"], d["model"]
    print(f"{a.input}: {d['bytes']} bytes, nervc bitstream {d['version']}")
    print(f"  video     {v['width']}x{v['height']}, {v['frames']} frames @ {v['fps']} fps ({d['bpp']:.4f} bpp)")
    if (v["coded_width"], v["coded_height"]) != (v["width"], v["height"]):
        print(f"  coded     {v['coded_width']}x{v['coded_height']}, resized to {v['width']}x{v['height']} on decode")
    print(f"  GOPs      {len(d['gops'])} of up to {v['gop_frames']} frames")
    print(f"  model     NeRV, channels {','.join(map(str, m['channels']))}, strides "
          f"{','.join(map(str, m['strides']))}; grid {m['grid_channels']} channels x {m['grid_anchors']} "
          f"anchors at {m['grid_hw'][0]}x{m['grid_hw'][1]}; time code {m['pe_freqs']} frequencies "
          f"(base {m['pe_base']:g}), MLP width {m['embed_dim']}")
    print(f"  size      {m['weights_per_gop']:,} weights per GOP; decode {m['macs_per_pixel']:,.0f} MACs "
          f"per pixel the network draws")
    print(f"  init      {d['init'] or 'none (random init)'}")
    print(f"  rate      {d['bits_per_weight']:.3f} bits per weight; side information (header, section and "
          f"tensor fields) {d['side_bytes']} bytes = {100 * d['side_bytes'] / d['bytes']:.2f} %")
    for i, g in enumerate(d["gops"]):
        print(f"  GOP {i}: frames {g['first_frame']}..{g['last_frame']}, {g['bytes']} bytes")
        print(f"    {g['ans_bytes']} bytes of ANS words for every tensor "
              f"({'delta from init' if d['init'] else 'absolute'})")
        for t in g["tensors"]:
            model = f"levels -{t['K']}..{t['K']}, Laplace R={t['R']}" if t["K"] else "all zero"
            print(f"    {t['name']:24s} {str(tuple(t['shape'])):18s} step {t['step']:.3g}, {model}")
    return 0


def stream_info(r, path) -> dict:
    """What ``nervc info`` shows of a bitstream, as plain data (``--json`` prints it)."""
    from bitstreams.format import macs_per_pixel

    h = r.header
    gops = [r.read_gop(i) for i in range(len(r.sections))]
    coded = sum(4 * len(g.words) for g in gops)
    per_gop = sum(math.prod(shape) for _, shape in r.shapes)
    return {
        "file": str(path), "bytes": r.size, "version": f"{r.version[0]}.{r.version[1]}",
        "bpp": 8 * r.size / (h.width * h.height * h.num_frames),
        "video": {"width": h.width, "height": h.height, "frames": h.num_frames, "fps": str(h.fps),
                  "gop_frames": h.gop_frames, "coded_width": h.coded_width, "coded_height": h.coded_height},
        "model": {**h.config.to_dict(), "grid_hw": list(h.grid_hw), "weights_per_gop": per_gop,
                  "macs_per_pixel": macs_per_pixel(h.config)},
        "init": h.init_digest.hex()[:16] if h.has_init else None,
        "bits_per_weight": 8 * coded / max(1, len(gops) * per_gop), "side_bytes": r.size - coded,
        "gops": [{"first_frame": s.first_frame, "last_frame": s.first_frame + s.num_frames - 1, "bytes": s.length,
                  "ans_bytes": 4 * len(g.words),
                  "tensors": [{"name": name, "shape": list(shape), "step": float(t.step), "K": int(t.K), "R": int(t.R)}
                              for (name, shape), t in zip(r.shapes, g.tensors)]}
                 for s, g in zip(r.sections, gops)],
    }
