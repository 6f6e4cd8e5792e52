"""Shared plumbing of the benchmarks: finding the running stack, percentiles, reports."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def stack_env(run_root: Path = ROOT / ".run") -> dict[str, str]:
    """Settings of the stack started by ``make up`` (environment variables win)."""
    values: dict[str, str] = {}
    for name in ("stack.env", "secrets.env"):
        path = run_root / name
        if path.is_file():
            for line in path.read_text().splitlines():
                key, sep, value = line.partition("=")
                if sep:
                    values[key] = value
    values.update({k: v for k, v in os.environ.items() if k.startswith("LEADTRAIL_")})
    if "LEADTRAIL_KAFKA_BOOTSTRAP" not in values:
        sys.exit("no running stack: start one with `make up DETACH=1` (or set LEADTRAIL_* vars)")
    return values


def percentile(samples: list[float], q: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(latencies_s: list[float], elapsed_s: float) -> dict[str, float]:
    return {
        "count": len(latencies_s),
        "per_second": len(latencies_s) / elapsed_s if elapsed_s else 0.0,
        "p50_ms": percentile(latencies_s, 50) * 1000,
        "p99_ms": percentile(latencies_s, 99) * 1000,
        "mean_ms": statistics.fmean(latencies_s) * 1000 if latencies_s else float("nan"),
    }


def machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def save(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path
