"""Regenerate the fuzz seed corpus: small valid ``.nerv`` files (bitstream version 3, one 2).

    python -m tests.fuzz.make_corpus            # writes tests/fuzz/corpus/seed_*.nerv + inits
    python -m tests.fuzz.make_corpus --regress  # only rewrites tests/fuzz/corpus/regress/
    python -m tests.fuzz.make_corpus --add-v4   # adds seed4_*: the seeds again as bitstream 4

Most seeds are encoded with the real encoder (a few training steps, so they are quick and
small) from a cropped real clip; a few are derived from them with the bitstream writer to reach
what a short encode does not produce. Together they cover: odd and even frame sizes down to
1x1, one and several GOPs (including a short last GOP), absolute coding (no init: the default
architecture, and a tiny one), delta coding against the shipped init and against two tiny inits
of different architectures (2 and 3 blocks, strides 1/2/3, one grid anchor), GOPs where every
tensor has ``K = 0`` (no ANS words at all), GOPs mixing ``K = 0`` and ``K > 0`` tensors, and a
tensor with the largest level the format allows (``K = 32767``), coded sizes smaller than the
output (``--scale`` 2, 3 and 8: the decoder's bicubic resize), and one version-2 file (a
version-3 seed with the old header). ``corpus/seeds.json`` records
how each seed was made and which init it needs.
"""
from __future__ import annotations

import json
import struct
import sys
import zlib
from pathlib import Path

import torch

CORPUS = Path(__file__).resolve().parent / "corpus"
FIXTURE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "fixtures" / "bus_qcif_30f.264"

# Encoded seeds: name -> (init, width, height, frames, gop, quality, steps[, scale]).
# init: None = "random" (absolute coding, default architecture), "default" = the shipped init,
# "tinyA"/"tinyB" = corpus/init_*.safetensors. Absolute coding uses steps=0: the fit from a
# random init is what it is, the point is a valid absolute stream of the default architecture.
SEEDS = {
    "seed_random_17x9_q5": (None, 17, 9, 2, 2, 5, 0),
    "seed_random_16x16_q2_gop2": (None, 16, 16, 3, 2, 2, 0),
    "seed_default_17x9_q1": ("default", 17, 9, 2, 2, 1, 2),
    "seed_default_23x15_q8_gop1": ("default", 23, 15, 3, 1, 8, 2),
    "seed_default_1x1_s0_allzero": ("default", 1, 1, 2, 2, 5, 0),  # every tensor K = 0
    "seed_tinyA_21x13_q8_gop2": ("tinyA", 21, 13, 4, 2, 8, 8),
    "seed_tinyA_8x8_q3_gop2": ("tinyA", 8, 8, 3, 2, 3, 6),
    "seed_tinyA_1x1_q5": ("tinyA", 1, 1, 2, 2, 5, 4),
    "seed_tinyA_47x33_q1_gop1": ("tinyA", 47, 33, 3, 1, 1, 4),
    "seed_tinyB_19x11_q6_gop2": ("tinyB", 19, 11, 5, 2, 6, 6),
    "seed_tinyB_6x5_q8": ("tinyB", 6, 5, 1, 1, 8, 8),
    "seed_tinyB_32x8_q2_gop3": ("tinyB", 32, 8, 4, 3, 2, 4),
    "seed_default_40x24_scale2": ("default", 40, 24, 2, 2, 4, 2, 2),
    "seed_tinyA_23x17_scale3_gop2": ("tinyA", 23, 17, 3, 2, 6, 4, 3),
    "seed_tinyB_40x16_scale8": ("tinyB", 40, 16, 2, 2, 3, 4, 8),
}

# Derived seeds: name -> (source seed, recipe); see derive().
DERIVED = {
    "seed_tinyA_8x8_noinit_gop2": ("seed_tinyA_8x8_q3_gop2", "noinit"),
    "seed_tinyB_6x5_largeK": ("seed_tinyB_6x5_q8", "largeK"),
    "seed_tinyB_32x8_noinit_allzero_gop3": ("seed_tinyB_32x8_q2_gop3", "allzero"),
    "seed_default_17x9_q1_v2": ("seed_default_17x9_q1", "version2"),
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
    """Write the tiny init (deterministic); an existing file with the same content digest is
    left alone (safetensors metadata order may differ between library versions)."""
    from metanerv.init_file import init_digest, load_init, save_init
    from metanerv.model import build_model
    cfg = tiny_configs()[name]
    state = build_model(cfg, (1, 1), seed=7).state_dict()
    if path.is_file() and load_init(path).digest == init_digest(cfg, state):
        return
    save_init(path, cfg, state, info={"fuzz": name})


def recode(gop, levels: list, steps: list | None = None):
    """``gop`` with its tensors' levels replaced and entropy-coded again (a valid record)."""
    import numpy as np

    from bitstreams import format as fmt
    from codec.entropy import encode_tensors, fit_laplace
    models = [fit_laplace(lv) for lv in levels]
    steps = steps or [t.step for t in gop.tensors]
    tensors = [fmt.TensorRecord(np.float16(s if m.K else 0), m.K, m.R) for s, m in zip(steps, models)]
    return fmt.GopRecord(gop.first_frame, gop.num_frames, tensors, encode_tensors(levels, models))


def gop_levels(reader, gop) -> list:
    """The decoded integer levels of ``gop`` (one flat int64 array per tensor)."""
    import math

    from codec.entropy import LaplaceModel, decode_tensors
    return decode_tensors(gop.words, [LaplaceModel(t.K, t.R) for t in gop.tensors],
                          [math.prod(s) for _, s in reader.shapes])


def derive(src: Path, recipe: str, out: Path) -> dict:
    """Write a seed derived from ``src`` with the bitstream writer; returns its record."""
    from dataclasses import replace

    import numpy as np

    from bitstreams import BitstreamReader
    from bitstreams import format as fmt
    if recipe == "version2":  # the same file with a version-2 header (no coded size)
        from codec.conformance import as_version2
        out.write_bytes(as_version2(src.read_bytes()))
        r = BitstreamReader(out)
        return {"bytes": out.stat().st_size, "K": [[t.K for t in r.read_gop(i).tensors] for i in range(len(r.sections))]}
    r = BitstreamReader(src)
    gops = [r.read_gop(i) for i in range(len(r.sections))]
    h = r.header
    if recipe == "noinit":  # the same records without the init: an absolute tiny stream
        h = replace(h, init_digest=bytes(fmt.INIT_ID_BYTES))
    elif recipe == "allzero":  # every tensor K = 0, no words, no init: a constant picture
        h = replace(h, init_digest=bytes(fmt.INIT_ID_BYTES))
        gops = [fmt.GopRecord(g.first_frame, g.num_frames,
                              [fmt.TensorRecord(np.float16(0), 0, 0) for _ in g.tensors]) for g in gops]
    elif recipe == "largeK":  # one tensor spans -32767..32767, one K = 0, the rest re-coded
        rng = np.random.default_rng(11)
        out_gops = []
        for g in gops:
            levels = gop_levels(r, g)
            big = max(range(len(levels)), key=lambda i: levels[i].size)
            lv = np.round(rng.laplace(0, 40, levels[big].size)).astype(np.int64)
            lv[0], lv[-1] = fmt.MAX_LEVEL, -fmt.MAX_LEVEL
            levels[big] = np.clip(lv, -fmt.MAX_LEVEL, fmt.MAX_LEVEL)
            levels[1] = np.zeros_like(levels[1])
            steps = [t.step for t in g.tensors]
            steps[big] = np.float16(1e-5)  # keeps the weights small: still a sane picture
            out_gops.append(recode(g, levels, steps))
        gops = out_gops
    else:
        raise ValueError(recipe)
    n = fmt.write_bitstream(out, h, gops)
    return {"bytes": n, "K": [[t.K for t in g.tensors] for g in gops]}


def add_v4_seeds() -> dict:
    """Encode every entry of SEEDS again with today's encoder (bitstream 4: GOP identity, end
    marker, and at -q 4 and up one grid anchor per frame) as ``seed4_*.nerv`` beside the
    version-3 seeds, which stay as nervc 0.3 wrote them (version 3 is still read); returns and
    records their seeds.json entries."""
    import codec
    from bitstreams import BitstreamReader
    from nervcore.video_io import Video, read_video

    clip = read_video(FIXTURE, frames=slice(0, 5))
    meta = json.loads((CORPUS / "seeds.json").read_text())
    for name, (init, w, h, n, gop, quality, steps, *scale) in SEEDS.items():
        out = CORPUS / (name.replace("seed_", "seed4_", 1) + ".nerv")
        video = Video(clip.frames[:n, 40:40 + h, 60:60 + w].copy(), clip.fps)
        init_path = CORPUS / f"init_{init}.safetensors" if init and init != "default" else None
        spec = str(init_path) if init_path else (init or "random")
        r = codec.encode(video, out, quality=quality, steps=steps, gop=gop, init=spec, progress=False,
                         overwrite=True, seed=3, scale=scale[0] if scale else 1)
        rd = BitstreamReader(out)
        ks = [[t.K for t in rd.read_gop(i).tensors] for i in range(len(rd.sections))]
        meta[out.name] = {"init": init_path.name if init_path else None, "version": 4,
                          "encoded_with": spec if not init_path else init_path.name,
                          "width": w, "height": h, "frames": n, "gop": gop, "quality": quality,
                          "steps": steps, "bytes": r.num_bytes, "scale": scale[0] if scale else 1,
                          "anchors": rd.header.config.grid_anchors,
                          "max_K": max(max(k) for k in ks), "zero_K_tensors": sum(k.count(0) for k in ks)}
        print(f"{out.name}: {r.num_bytes} bytes, {rd.header.config.grid_anchors} anchors, K per GOP {ks}")
    (CORPUS / "seeds.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
    return meta


def main(argv: list[str] | None = None) -> int:
    torch.set_num_threads(1)
    if "--regress" in (sys.argv[1:] if argv is None else argv):
        make_regress()
        return 0
    if "--add-v4" in (sys.argv[1:] if argv is None else argv):
        add_v4_seeds()
        return 0
    import codec
    from bitstreams import BitstreamReader
    from metanerv.init_file import DEFAULT_INIT
    from nervcore.video_io import Video, read_video

    CORPUS.mkdir(parents=True, exist_ok=True)
    for old in CORPUS.glob("seed_*.nerv"):
        old.unlink()
    for name in tiny_configs():
        make_init(CORPUS / f"init_{name}.safetensors", name)
    clip = read_video(FIXTURE, frames=slice(0, 5))
    record = {}
    for name, (init, w, h, n, gop, quality, steps, *scale) in SEEDS.items():
        video = Video(clip.frames[:n, 40:40 + h, 60:60 + w].copy(), clip.fps)
        init_path = CORPUS / f"init_{init}.safetensors" if init and init != "default" else None
        spec = str(init_path) if init_path else (init or "random")
        r = codec.encode(video, CORPUS / f"{name}.nerv", quality=quality, steps=steps, gop=gop,
                         init=spec, progress=False, overwrite=True, seed=3, scale=scale[0] if scale else 1)
        rd = BitstreamReader(CORPUS / f"{name}.nerv")
        ks = [[t.K for t in rd.read_gop(i).tensors] for i in range(len(rd.sections))]
        record[name + ".nerv"] = {"init": init_path.name if init_path else None,
                                  "encoded_with": spec if not init_path else init_path.name,
                                  "width": w, "height": h, "frames": n, "gop": gop,
                                  "quality": quality, "steps": steps, "bytes": r.num_bytes,
                                  "scale": scale[0] if scale else 1,
                                  "max_K": max(max(k) for k in ks),
                                  "zero_K_tensors": sum(k.count(0) for k in ks)}
        print(f"{name}.nerv: {r.num_bytes} bytes, K per GOP {ks}")
    for name, (src, recipe) in DERIVED.items():
        d = derive(CORPUS / f"{src}.nerv", recipe, CORPUS / f"{name}.nerv")
        rec = dict(record[src + ".nerv"])
        rec.update(derived_from=src + ".nerv", recipe=recipe, bytes=d["bytes"],
                   max_K=max(max(k) for k in d["K"]), zero_K_tensors=sum(k.count(0) for k in d["K"]))
        if recipe in ("noinit", "allzero"):
            rec["init"] = None
        record[name + ".nerv"] = rec
        print(f"{name}.nerv: {d['bytes']} bytes, K per GOP {d['K']}")
    (CORPUS / "seeds.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    # every seed must decode (with only the init it names; the shipped init is always found)
    for name, rec in record.items():
        init = [str(CORPUS / rec["init"])] if rec["init"] else None
        codec.decode(CORPUS / name, None, device="cpu", init=init)
    assert DEFAULT_INIT.is_file()
    make_regress()
    return 0


# ------------------------------------------------------------------ regression inputs

V1_FIXED = struct.Struct("<4sBBHHHIIIII32sBfHHBB")  # the version-1 header, through n_blocks


def v1_file(config, width: int, height: int, frames: int) -> bytes:
    """A version-1 (nervc 0.1) header with a valid CRC and one empty-ish section: what an old
    file looks like up to the point where a version-2 decoder must stop."""
    body = V1_FIXED.pack(b"NERV", 1, 0, 0, width, height, frames, 25, 1, frames, 1, bytes(32),
                         config.pe_freqs, config.pe_base, config.embed_dim, config.grid_channels,
                         config.grid_anchors, len(config.channels))
    body += struct.pack(f"<{len(config.channels)}H", *config.channels)
    body += struct.pack(f"<{len(config.strides)}B", *config.strides)
    body = body[:6] + struct.pack("<H", len(body)) + body[8:]
    payload = struct.pack("<IIH", 0, frames, 0)
    return (body + struct.pack("<I", zlib.crc32(body)) + struct.pack("<BII", 1, len(payload), zlib.crc32(payload))
            + payload)


def tensor_bytes_stream(header, gops, gop_index: int, tensor_index: int, raw_record: bytes) -> bytes:
    """``header`` + ``gops`` with one tensor record replaced by raw bytes (CRCs valid)."""
    from bitstreams import format as fmt
    out = fmt.encode_header(header)
    for gi, g in enumerate(gops):
        if gi != gop_index:
            out += fmt.encode_gop(g)
            continue
        recs = [fmt.encode_tensor(t) for t in g.tensors]
        recs[tensor_index] = raw_record
        payload = b"".join(recs) + struct.pack("<I", len(g.words)) + g.words.astype("<u4").tobytes()
        out += struct.pack("<BII", fmt.SECTION_GOP, len(payload), zlib.crc32(payload)) + payload
    return out


def make_regress(out: Path = CORPUS / "regress") -> None:
    """Crafted inputs that crashed, blew up or hung an earlier decoder, or guard a limit (see
    tests/fuzz/README.md). Version-1 recipes are rebuilt on the version-2 layout.

    Each ``NAME.nerv`` has a ``NAME.json`` with the expected outcome (``rejected`` + a message
    fragment, or ``ok``); tests/test_hostile_fuzz.py::test_regression_corpus replays them.
    Files without a recipe here (``v1_*_verbatim``: real nervc 0.1 files) are kept as they are.
    """
    import copy
    import json
    from dataclasses import replace

    import numpy as np

    from bitstreams import format as fmt
    from tests.fuzz.mutate import load_seeds, serialize, zero_gop

    out.mkdir(parents=True, exist_ok=True)
    seeds = {s.name: s for s in load_seeds()}
    keep = {p.stem for p in out.glob("*_verbatim.nerv")}
    for p in out.iterdir():
        if p.suffix in (".nerv", ".json") and p.stem not in keep:
            p.unlink()

    def save(name, data, outcome, match="", note=""):
        (out / f"{name}.nerv").write_bytes(data)
        rec = {"outcome": outcome, "match": match, **({"note": note} if note else {})}
        (out / f"{name}.json").write_text(json.dumps(rec) + "\n")

    noinit = bytes(fmt.INIT_ID_BYTES)
    b = seeds["seed_tinyB_6x5_q8.nerv"]
    # valid stream of ~100 bytes claiming 10M frames of 16384x16384 (every tensor K = 0): the
    # old decoder tried to allocate the frames (numpy MemoryError, or the OOM killer)
    h = replace(b.header, width=16384, height=16384, num_frames=fmt.MAX_FRAMES,
                gop_frames=fmt.MAX_FRAMES, num_gops=1, init_digest=noinit)
    save("bomb_16384x16384x10M", serialize(h, [zero_gop(h, 0, fmt.MAX_FRAMES)]),
         "rejected", "decode memory limit")
    # one 4096x4096 frame: within every format limit, beyond a sane decode budget per frame
    h = replace(b.header, width=4096, height=4096, num_frames=1, gop_frames=1, num_gops=1,
                config=replace(b.header.config, channels=(64, 64, 64)), init_digest=noinit)
    save("bomb_4096x4096_64ch", serialize(h, [zero_gop(h, 0, 1)]), "rejected", "decode memory limit")
    # ~19M multiply-accumulates per pixel in a small file: decoding took minutes per frame
    h = replace(b.header, width=8, height=8, num_frames=1, gop_frames=1, num_gops=1,
                config=replace(b.header.config, channels=(1024, 1024, 1024), strides=(1, 1, 1)),
                init_digest=noinit)
    save("macs_1024ch_stride1", serialize(h, [zero_gop(h, 0, 1)]), "rejected", "multiply-accumulates")
    a = seeds["seed_tinyA_8x8_q3_gop2.nerv"]
    # K as a 6-byte varint (the v1 reader once accepted 6 bytes) and a 5-byte one above 32 bits
    t0 = a.gops[0].tensors[0]
    step = np.asarray([t0.step], "<f2").tobytes()
    for name, raw, match in (("varint_6_bytes", b"\xff" * 5 + b"\x01", "varint longer than 5 bytes"),
                             ("varint_over_32_bits", b"\xff\xff\xff\xff\x7f", "exceeds 32 bits")):
        save(name, tensor_bytes_stream(a.header, a.gops, 0, 0, step + raw + b"\x00\x80"), "rejected", match)
    # far more ANS words than the GOP's coded entries can use (the v1 decoder handed them all
    # to constriction); v2 has one stream per GOP, so the bound is on the whole GOP
    g = copy.deepcopy(a.gops)
    coded = sum(int(np.prod(s)) for (_, s), t in zip(a.shapes, g[0].tensors) if t.K)
    g[0].words = np.concatenate([g[0].words, np.arange(1, 1 + 4 * fmt.max_words(coded), dtype=np.uint32)])
    save("too_many_words", serialize(a.header, g), "rejected", "coded words for")
    # v1's zero-frame GOP section is not representable in v2 (sections hold no frame counts;
    # num_gops = ceil(num_frames / gop_frames) with both >= 1). Its nearest v2 equivalent is a
    # header declaring no frames at all.
    save("zero_frames_header", serialize(replace(a.header, num_frames=0), a.gops), "rejected",
         "frame count 0 out of range")
    # a million GOPs declared in a 2 kB file
    h = replace(a.header, num_frames=1_000_000, gop_frames=1, num_gops=1_000_000)
    save("million_gops", serialize(h, a.gops), "rejected", "cannot fit")
    # version 1 files are refused by version, before anything else is read
    save("v1_header_tinyA", v1_file(a.header.config, 8, 8, 3), "rejected",
         "version 1.0 (nervc 0.1) is no longer supported")
    # the largest level the format allows, coded and decoded (a valid stream)
    big = seeds["seed_tinyB_6x5_largeK.nerv"]
    save("largeK_32767_ok", big.data, "ok")
    # one past it: K = 32768 is refused from the record, before any table is built
    t = big.gops[0].tensors
    i = next(k for k, x in enumerate(t) if x.K == fmt.MAX_LEVEL)
    rec = np.asarray([t[i].step], "<f2").tobytes() + fmt._varint(fmt.MAX_LEVEL + 1) + struct.pack("<H", t[i].R)
    save("largeK_32768", tensor_bytes_stream(big.header, big.gops, 0, i, rec), "rejected",
         "largest level 32768 exceeds 32767")
    # When every coded level of a GOP is -K (symbol 0), constriction's coder leaves its state at
    # 0 and encode_tensors returns no words. The parser and decoder refused n_words = 0 with
    # coded tensors, so the codec could write a file it then refused (found by
    # tests/test_hostile_fuzz.py::test_entropy_round_trip; fixed in 639860c, SPEC.md now allows
    # it). Written with the codec's own fit_laplace + encode_tensors: head.bias = [-1, -1, -1],
    # every other tensor K = 0.
    from codec.entropy import encode_tensors, fit_laplace
    h = replace(b.header, init_digest=noinit)
    g = zero_gop(h, 0, 1)
    levels = [np.zeros(int(np.prod(s)), np.int64) for _, s in fmt.param_shapes(h.config, h.grid_hw)]
    levels[-1][:] = -1
    models = [fit_laplace(lv) for lv in levels]
    g.tensors = [fmt.TensorRecord(np.float16(0.01 if m.K else 0), m.K, m.R) for m in models]
    g.words = encode_tensors(levels, models)
    assert len(g.words) == 0
    save("no_words_all_levels_minus_K", serialize(h, [g]), "ok",
         note="every coded level is -K: no ANS words; refused ('no coded words for 3 coded "
              "entries') before 639860c")


if __name__ == "__main__":
    sys.exit(main())
