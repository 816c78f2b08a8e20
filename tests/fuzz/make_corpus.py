"""Regenerate the fuzz seed corpus: small valid ``.nerv`` files of several configurations.

    python -m tests.fuzz.make_corpus            # writes tests/fuzz/corpus/seed_*.nerv + inits
    python -m tests.fuzz.make_corpus --regress  # only rewrites tests/fuzz/corpus/regress/

Seeds are encoded with the real encoder (2 training steps, so they are quick and small) from a
cropped real clip. Together they cover: odd and even frame sizes down to 1x1, one and several
GOPs (including a short last GOP), bits 2..10, prune 0 and 0.5, absolute coding (no init,
default architecture) and delta coding against two tiny inits with different architectures
(3 blocks, stride 1 and 3, a single grid anchor). ``corpus/seeds.json`` records how each seed
was made and which init it needs.
"""
from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import torch

CORPUS = Path(__file__).resolve().parent / "corpus"
FIXTURE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "fixtures" / "bus_qcif_30f.264"

# name -> (init, width, height, frames, gop, bits, prune)
SEEDS = {
    "seed_default_17x9_b2_p05": (None, 17, 9, 2, 2, 2, 0.5),
    "seed_default_16x16_b3_gop2": (None, 16, 16, 3, 2, 3, 0.5),
    "seed_tinyA_21x13_b10_p0_gop2": ("tinyA", 21, 13, 4, 2, 10, 0.0),
    "seed_tinyA_8x8_b3_p05_gop2": ("tinyA", 8, 8, 3, 2, 3, 0.5),
    "seed_tinyA_1x1_b6_p0": ("tinyA", 1, 1, 2, 2, 6, 0.0),
    "seed_tinyA_47x33_b7_p05_gop1": ("tinyA", 47, 33, 3, 1, 7, 0.5),
    "seed_tinyB_19x11_b4_p0_gop2": ("tinyB", 19, 11, 5, 2, 4, 0.0),
    "seed_tinyB_6x5_b8_p05": ("tinyB", 6, 5, 1, 1, 8, 0.5),
    "seed_tinyB_32x8_b2_p0_gop3": ("tinyB", 32, 8, 4, 3, 2, 0.0),
}


def tiny_configs():
    from metanerv.model import NeRVConfig
    return {
        "tinyA": NeRVConfig(pe_freqs=4, pe_base=1.25, embed_dim=8, grid_channels=4, grid_anchors=2,
                            channels=(8, 4), strides=(2, 2)),
        "tinyB": NeRVConfig(pe_freqs=2, pe_base=1.5, embed_dim=4, grid_channels=2, grid_anchors=1,
                            channels=(6, 5, 3), strides=(1, 2, 3)),
    }


def make_init(path: Path, name: str) -> None:
    from metanerv.init_file import save_init
    from metanerv.model import build_model
    cfg = tiny_configs()[name]
    save_init(path, cfg, build_model(cfg, (1, 1), seed=7).state_dict(), info={"fuzz": name})


def main(argv: list[str] | None = None) -> int:
    torch.set_num_threads(1)
    if "--regress" in (sys.argv[1:] if argv is None else argv):
        make_regress()
        return 0
    import codec
    from nervcore.video_io import Video, read_video

    CORPUS.mkdir(parents=True, exist_ok=True)
    for name in tiny_configs():
        make_init(CORPUS / f"init_{name}.safetensors", name)
    clip = read_video(FIXTURE, frames=slice(0, 5))
    record = {}
    for name, (init, w, h, n, gop, bits, prune) in SEEDS.items():
        video = Video(clip.frames[:n, 40:40 + h, 60:60 + w].copy(), clip.fps)
        init_path = CORPUS / f"init_{init}.safetensors" if init else None
        r = codec.encode(video, CORPUS / f"{name}.nerv", steps=2, bits=bits, prune=prune, gop=gop,
                         init=str(init_path) if init_path else "random", progress=False,
                         overwrite=True, seed=3)
        record[name + ".nerv"] = {"init": init_path.name if init_path else None, "width": w,
                                  "height": h, "frames": n, "gop": gop, "bits": bits,
                                  "prune": prune, "bytes": r.num_bytes}
        print(f"{name}.nerv: {r.num_bytes} bytes")
    (CORPUS / "seeds.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    make_regress()
    return 0



# ------------------------------------------------------------------ regression inputs

def raw_table_stream(seed, raw_counts: bytes) -> bytes:
    """``seed`` with the first tensor's frequency table replaced by one raw varint (CRC valid)."""
    import zlib

    from bitstreams import format as fmt
    g0, rest = seed.gops[0], seed.gops[1:]
    t = g0.tensors[0]
    rec = fmt.encode_tensor(t)
    off = 3 + 4 * len(t.shape) + 2 * (t.shape[0] if len(t.shape) >= 2 else 1) + 2  # at n_sym
    table = sum(len(fmt._varint(int(c))) for c in t.counts)
    rec = rec[:off] + struct.pack("<H", 1) + raw_counts + rec[off + 2 + table:]
    payload = struct.pack("<IIH", g0.first_frame, g0.num_frames, len(g0.tensors)) + rec + \
        b"".join(fmt.encode_tensor(x) for x in g0.tensors[1:])
    return (fmt.encode_header(seed.header) + struct.pack("<BII", 1, len(payload), zlib.crc32(payload))
            + payload + b"".join(fmt.encode_gop(g) for g in rest))


def make_regress(out: Path = CORPUS / "regress") -> None:
    """Crafted inputs that crashed, blew up or hung an earlier decoder (see tests/fuzz/README.md).

    Each ``NAME.nerv`` has a ``NAME.json`` with the expected outcome (``rejected`` + a message
    fragment, or ``ok``); tests/test_hostile_fuzz.py::test_regression_corpus replays them.
    """
    import copy
    import json
    import math
    from dataclasses import replace

    import numpy as np

    from bitstreams import format as fmt
    from metanerv.model import decode_param_shapes
    from tests.fuzz.mutate import load_seeds, serialize

    out.mkdir(parents=True, exist_ok=True)
    seeds = {s.name: s for s in load_seeds()}

    def single_symbol_gop(h, first, n):
        g = fmt.GopRecord(first, n)
        for _, shape in decode_param_shapes(h.config, h.grid_hw):
            m = shape[0] if len(shape) >= 2 else 1
            g.tensors.append(fmt.TensorRecord(0, 2, shape, np.zeros(m, np.float16), 0,
                                              np.array([math.prod(shape)], np.uint32), np.zeros(0, np.uint32)))
        return g

    def save(name, data, outcome, match=""):
        (out / f"{name}.nerv").write_bytes(data)
        (out / f"{name}.json").write_text(json.dumps({"outcome": outcome, "match": match}) + "\n")

    b = seeds["seed_tinyB_6x5_b8_p05.nerv"]
    # valid stream of 700 bytes claiming 10M frames of 16384x16384: the old decoder tried to
    # allocate the frames (numpy MemoryError, or the OOM killer)
    h = replace(b.header, width=16384, height=16384, num_frames=fmt.MAX_FRAMES,
                gop_frames=fmt.MAX_FRAMES, num_gops=1, init_digest=bytes(32))
    save("bomb_16384x16384x10M", serialize(h, [single_symbol_gop(h, 0, fmt.MAX_FRAMES)]),
         "rejected", "decode memory limit")
    # one 4096x4096 frame: within every format limit, beyond a sane decode budget per frame
    h = replace(b.header, width=4096, height=4096, num_frames=1, gop_frames=1, num_gops=1,
                config=replace(b.header.config, channels=(64, 64, 64)), init_digest=bytes(32))
    save("bomb_4096x4096_64ch", serialize(h, [single_symbol_gop(h, 0, 1)]), "rejected", "decode memory limit")
    # ~19M multiply-accumulates per pixel in a 600-byte file: decoding took minutes per frame
    h = replace(b.header, width=8, height=8, num_frames=1, gop_frames=1, num_gops=1,
                config=replace(b.header.config, channels=(1024, 1024, 1024), strides=(1, 1, 1)),
                init_digest=bytes(32))
    save("macs_1024ch_stride1", serialize(h, [single_symbol_gop(h, 0, 1)]), "rejected", "multiply-accumulates")
    a = seeds["seed_tinyA_8x8_b3_p05_gop2.nerv"]
    # a 6-byte varint (the old reader accepted 6) and a 5-byte one above 32 bits
    for name, raw in (("varint_6_bytes", b"\xff" * 5 + b"\x01"), ("varint_over_32_bits", b"\xff\xff\xff\xff\x7f")):
        save(name, raw_table_stream(a, raw), "rejected", "varint")
    # far more ANS words than the tensor can use (the old decoder handed them all to constriction)
    g = copy.deepcopy(a.gops)
    t = max(g[0].tensors, key=lambda t: len(t.words))
    t.words = np.concatenate([t.words, np.arange(1, 1 + 4 * fmt.max_words(t.numel), dtype=np.uint32)])
    save("too_many_words", serialize(a.header, g), "rejected", "coded words")
    # zero-frame GOP section
    g = copy.deepcopy(a.gops)
    g[1].num_frames = 0
    save("zero_frame_section", serialize(a.header, g), "rejected", "frames 2+0")
    # a million GOPs declared in a 2 kB file
    h = replace(a.header, num_frames=1_000_000, gop_frames=1, num_gops=1_000_000)
    save("million_gops", serialize(h, a.gops), "rejected", "cannot fit")


if __name__ == "__main__":
    sys.exit(main())
