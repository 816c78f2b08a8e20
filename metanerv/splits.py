"""The fixed split of ``train/`` into meta-training clips and held-back clips.

Every claim about a meta-learned init is measured on clips no init being measured has seen:
the held-back train clips below, and the rate–distortion protocol's clips (never trained on at all). The split is
data in the product, so a run cannot leak by accident: ``nervc meta-train DIR --split meta``
drops every held-back clip from DIR before anything is opened (``select``), and records the
clips it kept in the init it writes.

``HELD_BACK`` names 13 of the 75 clips of ``train/`` (17 %), one per public source repository,
spread over content: people indoors and out, a face, sports, animals, water, a night street, a
city crowd, cooking, a factory line and a surveillance motorway. They come only from the 59
clips added on 2026-12-07: the shipped default init (``metanerv/inits/default.safetensors``)
was meta-trained on 2026-11-28 on the 16 clips ``train/`` held then (``OLD_TRAIN``), so these
13 are unseen by it as well and it can be measured on them beside any init trained with
``--split meta``. (Before this split, the meta-curve run of 2026-11-29 held back four of the old
16 -- airplane, chaplin, cup, whisper -- which the shipped init had seen.)

``EVAL_CLIPS`` are six of the 13, cheap at the coded half size, that the data-scaling curve
(the meta-data driver of the evaluation tools) adapts to by default (its 2026-12-07 record measured four
of them, armwrestle, archery, motorway and stream, for budget); the rest are for
longer measurements.

``nested(names, sources, n, seed)`` gives the first ``n`` clips of one fixed order of the
meta-training clips, a seeded round-robin over sources, so that a smaller subset is always
part of a larger one (8 within 16 within 32 within all) and is spread over sources.
"""
from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from nervcore.errors import NervcError

SPLITS = ("all", "meta", "held")
SUBSET_SEED = 20261207

# one per source repository (MANIFEST.tsv's source column), all added on 2026-12-07
HELD_BACK: tuple[str, ...] = (
    "20_armwrestle_340x256_96f.mp4",       # open-mmlab/mmaction2: people, indoor sport
    "25_kitten_568x320_96f.mp4",           # gaomingqi/Track-Anything: animal
    "32_tram_night_640x360_31f.mp4",       # ckkelvinchan/RealBasicVSR: city at night, vehicles
    "33_market_960x540_45f.mp4",           # yoxu515 (source in MANIFEST.tsv): city crowd
    "36_pancake_426x240_96f.mp4",          # dmlc/decord: indoor, hands, cooking
    "39_bottles_640x360_96f.mp4",          # intel-iot-devkit/sample-videos: factory line
    "43_face_outdoor_480x480_96f.mp4",     # KwaiVGI/LivePortrait: face
    "49_snowboard_718x718_91f.mp4",        # showlab/Tune-A-Video: sport, snow, nature
    "56_riverboat_592x336_96f.mp4",        # DAMO-NLP-SG/Video-LLaMA: water, boat
    "61_jogger_512x512_96f.mp4",           # omerbt/TokenFlow: person outdoors
    "64_archery_320x240_96f.mp4",          # PaddlePaddle/PaddleVideo: sport
    "73_motorway_320x240_96f.mp4",         # andrewssobral/bgslibrary: vehicles, surveillance
    "79_stream_480x360_90f.mp4",           # mdn/interactive-examples: water, nature
)

# the six held-back clips the data-scaling curve measures (small at half size, varied content)
EVAL_CLIPS: tuple[str, ...] = (
    "20_armwrestle_340x256_96f.mp4", "25_kitten_568x320_96f.mp4", "36_pancake_426x240_96f.mp4",
    "64_archery_320x240_96f.mp4", "73_motorway_320x240_96f.mp4", "79_stream_480x360_90f.mp4",
)

# train/ before 2026-12-07: what the shipped default init (and every init before it) saw
OLD_TRAIN: tuple[str, ...] = (
    "01_dog.mp4", "02_cups.mp4", "03_blocks.mp4", "05_default_juggle.mp4", "airplane.mp4",
    "bedroom.mp4", "box.mp4", "chaplin.mp4", "cockatoo.mp4", "cup.mp4", "flower_720p.264",
    "office_720p.264", "street_1080p.264", "vt2people_320x192_9f.yuv", "vtest.avi",
    "whisper_640x320.264",
)


def read_manifest(path: str | os.PathLike) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def train_sources(manifest: str | os.PathLike) -> dict[str, str]:
    """file name -> source repository (first word of MANIFEST's source column), role train."""
    return {r["file"]: (r.get("source") or r["file"]).split()[0]
            for r in read_manifest(manifest) if r.get("role") == "train"}


def split_names(names: Iterable[str], split: str) -> list[str]:
    """The names of ``names`` in ``split``: all, meta (not held back) or held (held back)."""
    if split not in SPLITS:
        raise NervcError(f"unknown split {split!r} (one of {', '.join(SPLITS)})")
    held = set(HELD_BACK)
    names = sorted(names)
    if split == "meta":
        return [n for n in names if n not in held]
    if split == "held":
        return [n for n in names if n in held]
    return names


def nested(names: Sequence[str], sources: dict[str, str] | None = None, n: int | None = None,
           seed: int = SUBSET_SEED) -> list[str]:
    """The first ``n`` (all when None) of one fixed order of ``names``: sources in a seeded
    order, clips within a source shuffled, then one clip per source in turn. Prefixes nest, and
    each is spread over sources; the order depends only on the names, sources and seed."""
    sources = sources or {}
    groups: dict[str, list[str]] = {}
    for name in sorted(names):
        groups.setdefault(sources.get(name, name), []).append(name)
    rng = np.random.default_rng(seed)
    keys = sorted(groups)
    keys = [keys[i] for i in rng.permutation(len(keys))]
    for k in keys:
        groups[k] = [groups[k][i] for i in rng.permutation(len(groups[k]))]
    order: list[str] = []
    depth = 0
    while len(order) < len(names):
        for k in keys:
            if depth < len(groups[k]):
                order.append(groups[k][depth])
        depth += 1
    if n is not None:
        if not 0 < n <= len(order):
            raise NervcError(f"asked for {n} clips of a split that has {len(order)}")
        order = order[:n]
    return order


def _manifest_near(folder: Path) -> Path | None:
    """MANIFEST.tsv of the data root a train folder (or a folder of links into it) lies in."""
    for cand in (folder / "MANIFEST.tsv", folder.parent / "MANIFEST.tsv",
                 folder.resolve().parent / "MANIFEST.tsv"):
        if cand.is_file():
            return cand
    return None


def select(videos: Sequence[Path], split: str, clips: int | None = None, seed: int = SUBSET_SEED,
           manifest: str | os.PathLike | None = None) -> list[Path]:
    """The videos of a folder listing that a run on ``split`` may open (no file is opened here):
    ``meta`` drops the held-back clips, ``held`` keeps only them; ``clips`` keeps the first N of
    the nested order (``nested``, spread over MANIFEST's sources when it is found)."""
    by_name = {p.name: p for p in videos}
    names = split_names(by_name, split)
    if not names:
        raise NervcError(f"no videos of split {split!r} in this folder")
    if clips is not None:
        if manifest is None and videos:
            manifest = _manifest_near(Path(videos[0]).parent)
        sources = train_sources(manifest) if manifest else {}
        names = nested(names, sources, clips, seed)
    return [by_name[n] for n in sorted(names)]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m metanerv.splits [held|eval|meta|old] [DIR]``: the clip names, comma-separated,
    e.g. for the adaptation harness's ``--clips $(python -m metanerv.splits held)``."""
    import sys
    args = list(sys.argv[1:] if argv is None else argv)
    which = args[0] if args else "held"
    if which == "held":
        names = list(HELD_BACK)
    elif which == "eval":
        names = list(EVAL_CLIPS)
    elif which == "old":
        names = list(OLD_TRAIN)
    elif which == "meta":
        from metanerv.tasks import list_videos
        folder = args[1] if len(args) > 1 else str(Path(__file__).resolve().parents[2] / "shared" / "data" / "train")
        names = [p.name for p in select(list_videos(folder), "meta")]
    else:
        print("usage: python -m metanerv.splits [held|eval|meta|old] [DIR]", file=sys.stderr)
        return 2
    print(",".join(names))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
