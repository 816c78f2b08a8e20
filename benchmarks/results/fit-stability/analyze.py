"""Tables of the fit-stability trial: BD-rate of Adam's beta2 = 0.99 against torch's 0.999, per
init (the shipped one; the c8-coded candidate, whose variants end in ``-c8_coded``), and of the
candidate init against the shipped one at 0.999.

    PYTHONPATH=. python benchmarks/results/fit-stability/analyze.py > benchmarks/results/fit-stability/tables.md
"""
from pathlib import Path

from benchmarks.trials import bd_tables, load_points


def subset(pts: dict, keep) -> dict:
    return {clip: {v: rs for v, rs in by_v.items() if keep(v)} for clip, by_v in pts.items()}


if __name__ == "__main__":
    pts = load_points(Path(__file__).resolve().parent / "points.jsonl")
    print("## Shipped init 97aec1c1: beta2 0.99 against 0.999\n")
    print(bd_tables(subset(pts, lambda v: not v.endswith("-c8_coded")), "b999"))
    print("## Candidate init d8680c0d: beta2 0.99 against 0.999\n")
    print(bd_tables(subset(pts, lambda v: v.endswith("-c8_coded")), "b999-c8_coded"))
    print("## Candidate init against the shipped one, both at 0.999\n")
    print(bd_tables(subset(pts, lambda v: v in ("b999", "b999-c8_coded")), "b999"), end="")
