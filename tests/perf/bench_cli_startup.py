"""Start-up time of `python -m bench list` (target: at most 1.0 s), against a bare `python -c pass`."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TARGET_S = 1.0


def _time(cmd: list[str], repeats: int = 7) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=REPO)
        out.append(time.perf_counter() - t)
    return out


def test_bench_list_starts_fast():
    _time([sys.executable, "-m", "bench", "list"], repeats=1)  # warm the file cache
    bare = _time([sys.executable, "-c", "pass"])
    listing = _time([sys.executable, "-m", "bench", "list", "--json"])
    record = {
        "benchmark": "cli_startup",
        "command": "python -m bench list --json",
        "median_s": statistics.median(listing),
        "bare_python_median_s": statistics.median(bare),
        "ratio_to_bare_python": statistics.median(listing) / statistics.median(bare),
        "target_s": TARGET_S,
        "runs_s": listing,
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "python": platform.python_version()},
    }
    out = REPO / "results" / "perf" / "cli_startup.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))
    assert record["median_s"] <= TARGET_S
