"""Fuzz worker: reads case requests (JSON lines) on stdin, answers one JSON line per case.

Started by ``tests.fuzz.run``; the parent enforces the per-case timeout and the memory limit
by killing this process, so nothing here needs to be interruptible.
"""
from __future__ import annotations

import json
import os
import sys
import time


def main() -> int:
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints must not corrupt the protocol
    import torch
    torch.set_num_threads(1)
    from tests.fuzz.harness import peak_rss_kb, peak_rss_reset, run_file
    from tests.fuzz.mutate import CORPUS
    warm = sorted(CORPUS.glob("seed_tinyA_*.nerv"))  # first-call costs outside the timed cases
    if warm:
        run_file(str(warm[0]), [str(CORPUS / "init_tinyA.safetensors")])

    proto.write(json.dumps({"ready": os.getpid(), "rss_kb": peak_rss_kb()}) + "\n")
    for line in sys.stdin:
        req = json.loads(line)
        peak_rss_reset()
        t0 = time.perf_counter()
        res = run_file(req["path"], req["init"] or None)
        res["seconds"] = time.perf_counter() - t0
        res["peak_rss_kb"] = peak_rss_kb()
        res["id"] = req["id"]
        proto.write(json.dumps(res) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
