"""The min-steps trial's clips: short GOPs of the train set at bench-like sizes, plus two of
the trials' usual 30-frame clips (name, frames, box reduction), one process per variant.

    PYTHONPATH=. python benchmarks/results/min-steps/run.py OUT.jsonl VARIANT ...
"""
import sys

from benchmarks.trials import check_variants

CLIPS = (("whisper_640x320.264", 9, 1), ("box.mp4", 16, 1),
         ("office_720p.264", 19, 2), ("cup.mp4", 30, 2), ("bedroom.mp4", 30, 2))

if __name__ == "__main__":
    sys.exit(check_variants("benchmarks/results/min-steps/points.py", sys.argv[1], sys.argv[2:], clips=CLIPS))
