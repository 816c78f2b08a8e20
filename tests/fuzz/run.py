"""Fuzz the ``.nerv`` reader and decoder with a pool of worker processes.

    python -m tests.fuzz.run --cases 100000 --seed 1 --workers 2 --report fuzz.json
    python -m tests.fuzz.run --replay some.nerv --init tests/fuzz/corpus/init_tinyA.safetensors
    python -m tests.fuzz.run --dump-case 4711 --seed 1 --out case.nerv

Case ``i`` of seed ``s`` is generated from ``random.Random(f"{s}:{i}")`` alone, so any case can
be regenerated (``--dump-case``) whatever the worker count. Each case runs in a worker process
(``tests.fuzz.worker``) that the parent kills when the case exceeds ``--timeout`` seconds
(``hang``) or the worker's RSS exceeds ``--rss-limit-mb`` (``memory``); a worker that dies on
its own (segfault, abort, Rust panic that escaped) gives ``died``. Failing inputs are saved to
``--crash-dir`` with a JSON description. Exit status 1 when any case failed.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import random
import re
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FAILURES = ("crash", "bad-message", "hang", "memory", "died")


def _norm(msg: str, path: str) -> str:
    msg = msg.replace(path, "<file>")
    msg = re.sub(r"\d+(\.\d+)?", "N", msg)
    msg = re.sub(r"\(N(, N)*,?\)", "(shape)", msg)
    msg = re.sub(r"tensor [\w.]+", "tensor T", msg)
    return msg[:110]


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class _Worker:
    def __init__(self, k: int, work: Path, env: dict) -> None:
        self.k, self.work, self.env = k, work, env
        self.path = str(work / f"case{k}.nerv")
        self.log = work / f"worker{k}.log"
        self.start()

    def start(self) -> None:
        self.logf = open(self.log, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.fuzz.worker"], cwd=REPO,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.logf, env=self.env)
        os.set_blocking(self.proc.stdout.fileno(), False)
        self.buf = b""
        self.ready = False
        self.case = None  # (id, Case, t_sent)
        self.base_rss_kb = 0

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.logf.close()

    def send(self, cid: int, case) -> None:
        with open(self.path, "wb") as f:
            f.write(case.data)
        self.case = (cid, case, time.perf_counter())
        self.proc.stdin.write((json.dumps({"id": cid, "path": self.path, "init": case.init}) + "\n").encode())
        self.proc.stdin.flush()

    def lines(self) -> list[dict]:
        try:
            chunk = os.read(self.proc.stdout.fileno(), 1 << 16)
        except BlockingIOError:
            return []
        if not chunk:
            return []
        self.buf += chunk
        *done, self.buf = self.buf.split(b"\n")
        return [json.loads(x) for x in done if x.strip()]

    def log_tail(self) -> str:
        try:
            return self.log.read_bytes()[-3000:].decode(errors="replace")
        except OSError:
            return ""


class Stats:
    def __init__(self) -> None:
        self.outcomes = collections.Counter()
        self.by_strategy = collections.defaultdict(collections.Counter)
        self.modes = collections.Counter()
        self.messages = collections.Counter()
        self.failures: list[dict] = []
        self.distinct: dict[str, dict] = {}
        self.slowest: list[tuple] = []
        self.slowest_rejected = (0.0, None)
        self.peak = (0, None)
        self.base_rss_kb = 0
        self.seconds = 0.0
        self.generator_errors: list[str] = []

    def add(self, cid: int, case, res: dict, path: str, crash_dir: Path | None) -> None:
        out = res["outcome"]
        self.outcomes[out] += 1
        self.by_strategy[case.strategy][out] += 1
        self.modes[res.get("mode", "?")] += 1
        desc = {"id": cid, "strategy": case.strategy, "seed": case.seed, "detail": case.detail[:200]}
        secs = res.get("seconds", 0.0)
        self.slowest = sorted(self.slowest + [(secs, out, desc)], key=lambda x: -x[0])[:5]
        if out == "rejected":
            self.messages[_norm(res["message"], path)] += 1
            if secs > self.slowest_rejected[0]:
                self.slowest_rejected = (secs, {**desc, "message": res["message"].replace(path, "<file>")})
        if res.get("peak_rss_kb", 0) > self.peak[0]:
            self.peak = (res["peak_rss_kb"], {**desc, "outcome": out})
        if out in FAILURES:
            key = f"{out}:{res.get('type', '')}:{res.get('where', '')}"
            rec = {**desc, "outcome": out, "key": key, "type": res.get("type"),
                   "message": str(res.get("message", ""))[:500], "where": res.get("where"),
                   "traceback": res.get("traceback", "")[-3000:], "init": case.init}
            self.failures.append(rec)
            self.distinct.setdefault(key, {**rec, "count": 0})["count"] += 1
            if crash_dir is not None:
                crash_dir.mkdir(parents=True, exist_ok=True)
                (crash_dir / f"{out}-{cid}.nerv").write_bytes(case.data)
                (crash_dir / f"{out}-{cid}.json").write_text(json.dumps(rec, indent=1))

    def summary(self, cases: int, seed: int) -> dict:
        return {
            "cases": cases, "seed": seed, "seconds": round(self.seconds, 1),
            "outcomes": dict(self.outcomes),
            "by_strategy": {k: dict(v) for k, v in sorted(self.by_strategy.items())},
            "decode_modes": dict(self.modes),
            "distinct_failures": list(self.distinct.values()),
            "slowest_cases": [{"seconds": round(s, 3), "outcome": o, **d} for s, o, d in self.slowest],
            "slowest_rejected": {"seconds": round(self.slowest_rejected[0], 4), **(self.slowest_rejected[1] or {})},
            "worker_base_rss_mb": round(self.base_rss_kb / 1024, 1),
            "peak_rss_mb": round(self.peak[0] / 1024, 1), "peak_rss_case": self.peak[1],
            "generator_errors": self.generator_errors[:20],
            "distinct_rejection_messages": len(self.messages),
            "top_rejection_messages": self.messages.most_common(40),
        }


def run(cases: int, seed: int = 0, *, start: int = 0, workers: int = 2, timeout: float = 20.0,
        rss_limit_mb: int = 2048, decode_memory: str = "512M", crash_dir: Path | None = None,
        progress_every: int = 0, log=print) -> dict:
    """Run cases ``start .. start + cases - 1`` of ``seed``; returns the summary dict."""
    from tests.fuzz.mutate import all_inits, load_seeds, make_case

    seeds, inits = load_seeds(), all_inits()
    work = Path(tempfile.mkdtemp(prefix="nervc-fuzz-"))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "NERVC_DECODE_MEMORY": decode_memory}
    stats = Stats()
    pool = [_Worker(k, work, env) for k in range(max(1, workers))]
    sel = selectors.DefaultSelector()
    for w in pool:
        sel.register(w.proc.stdout, selectors.EVENT_READ, w)
    next_id, done, t0 = start, 0, time.perf_counter()
    end = start + cases

    def restart(w: _Worker) -> None:
        sel.unregister(w.proc.stdout)
        w.kill()
        w.start()
        sel.register(w.proc.stdout, selectors.EVENT_READ, w)

    def finish(w: _Worker, res: dict) -> None:
        nonlocal done
        cid, case, _ = w.case
        stats.add(cid, case, res, w.path, crash_dir)
        w.case = None
        done += 1
        if progress_every and done % progress_every == 0:
            el = time.perf_counter() - t0
            log(f"[fuzz] {done}/{cases} cases, {el:.0f} s, {dict(stats.outcomes)}")

    try:
        while done < cases:
            for w in pool:
                if w.ready and w.case is None and next_id < end:
                    try:
                        case = make_case(random.Random(f"{seed}:{next_id}"), seeds, inits)
                    except Exception as e:  # a bug in the generator: count it, keep fuzzing
                        stats.generator_errors.append(f"case {next_id}: {type(e).__name__}: {e}"[:300])
                        next_id += 1
                        done += 1
                        continue
                    w.send(next_id, case)
                    next_id += 1
            for key, _ in sel.select(timeout=0.2):
                w = key.data
                for msg in w.lines():
                    if "ready" in msg:
                        w.ready = True
                        stats.base_rss_kb = max(stats.base_rss_kb, msg.get("rss_kb", 0))
                    elif w.case is not None and msg.get("id") == w.case[0]:
                        finish(w, msg)
            now = time.perf_counter()
            for w in pool:
                if w.case is None:
                    if w.proc.poll() is not None:  # died while idle (should not happen)
                        restart(w)
                    continue
                elapsed = now - w.case[2]
                rss_mb = _rss_kb(w.proc.pid) / 1024
                if w.proc.poll() is not None:
                    for msg in w.lines():  # it may have answered just before exiting
                        if w.case is not None and msg.get("id") == w.case[0]:
                            finish(w, msg)
                    if w.case is not None:
                        finish(w, {"outcome": "died", "type": f"exit {w.proc.returncode}",
                                   "message": w.log_tail()[-1500:], "seconds": elapsed})
                    restart(w)
                elif elapsed > timeout:
                    finish(w, {"outcome": "hang", "type": "timeout", "seconds": elapsed,
                               "message": f"no answer after {timeout:.0f} s"})
                    restart(w)
                elif rss_mb > rss_limit_mb:
                    finish(w, {"outcome": "memory", "type": "rss", "seconds": elapsed,
                               "peak_rss_kb": int(rss_mb * 1024),
                               "message": f"RSS {rss_mb:.0f} MiB > {rss_limit_mb} MiB"})
                    restart(w)
    finally:
        for w in pool:
            try:
                w.proc.stdin.close()
            except OSError:
                pass
            w.kill()
        shutil.rmtree(work, ignore_errors=True)
    stats.seconds = time.perf_counter() - t0
    return stats.summary(cases, seed)


def replay(path: str, init: list[str]) -> dict:
    import torch
    torch.set_num_threads(1)
    from tests.fuzz.harness import peak_rss_kb, run_file
    t0 = time.perf_counter()
    res = run_file(path, init or None)
    res["seconds"] = round(time.perf_counter() - t0, 4)
    res["peak_rss_mb"] = round(peak_rss_kb() / 1024, 1)
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.fuzz.run", description=__doc__.split("\n")[0])
    p.add_argument("--cases", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start", type=int, default=0, help="first case index")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--timeout", type=float, default=20.0, help="seconds per case")
    p.add_argument("--rss-limit-mb", type=int, default=2048)
    p.add_argument("--decode-memory", default="512M", help="NERVC_DECODE_MEMORY for the workers")
    p.add_argument("--crash-dir", default=str(REPO / "tests" / "fuzz" / "crashes"))
    p.add_argument("--report", help="write the JSON summary here")
    p.add_argument("--progress", type=int, default=1000, help="print a line every N cases")
    p.add_argument("--replay", help="run one file in this process and print the outcome")
    p.add_argument("--init", action="append", default=[], help="init files for --replay")
    p.add_argument("--dump-case", type=int, help="write case N of --seed to --out")
    p.add_argument("--out")
    a = p.parse_args(argv)
    if a.replay:
        print(json.dumps(replay(a.replay, a.init), indent=1))
        return 0
    if a.dump_case is not None:
        from tests.fuzz.mutate import all_inits, load_seeds, make_case
        case = make_case(random.Random(f"{a.seed}:{a.dump_case}"), load_seeds(), all_inits())
        Path(a.out).write_bytes(case.data)
        print(json.dumps({"strategy": case.strategy, "seed": case.seed, "detail": case.detail,
                          "init": case.init}))
        return 0
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    s = run(a.cases, a.seed, start=a.start, workers=a.workers, timeout=a.timeout,
            rss_limit_mb=a.rss_limit_mb, decode_memory=a.decode_memory,
            crash_dir=Path(a.crash_dir), progress_every=a.progress)
    text = json.dumps(s, indent=1)
    if a.report:
        Path(a.report).write_text(text + "\n")
    print(text)
    failed = sum(s["outcomes"].get(k, 0) for k in FAILURES) + len(s["generator_errors"])
    print(f"[fuzz] {a.cases} cases in {s['seconds']} s: {failed} failures, "
          f"{len(s['distinct_failures'])} distinct", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
