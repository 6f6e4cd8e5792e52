"""bench/README.md's size section judges the full store against the empty one from one run."""

from __future__ import annotations

from typing import Any

from bench.size import kept_section, render, splice

RTT = {"p50_ms": 1.0, "p99_ms": 5.0}


def run(empty_rate: float, full_rate: float, empty_p50: float, full_p50: float) -> Any:
    def phase(rate: float, p50: float) -> dict[str, Any]:
        return {
            "ingest": {"api": {"per_second": rate}, "bare_producer": {"per_second": 4000.0}},
            "erasure": {"subjects": 50, "p50_ms": p50, "p99_ms": p50 * 2, "kafka_round_trip": RTT},
        }

    return {
        "machine": {"cpus": 2},
        "leads": 100_000,
        "collections": {"leads": 100_000, "subjects": 100_000},
        "filled_in_s": 600.0,
        "empty": phase(empty_rate, empty_p50),
        "full": phase(full_rate, full_p50),
        "ingest_ratio": full_rate / empty_rate,
        "erasure_ratio": empty_p50 / full_p50,
    }


def row(report: str, start: str) -> str:
    return next(line for line in report.splitlines() if line.startswith(f"| {start}"))


def test_a_full_store_within_the_target_is_met() -> None:
    report = render(run(empty_rate=100, full_rate=90, empty_p50=1000, full_p50=1100))
    assert "0.90 (full / empty)" in row(report, "ingest")
    assert row(report, "ingest").endswith("**met** |")
    assert row(report, "erasure p50").endswith("**met** |")
    assert "| leads | 100,000 |" in report


def test_a_store_that_slows_with_size_is_not_met() -> None:
    report = render(run(empty_rate=100, full_rate=50, empty_p50=1000, full_p50=4000))
    assert row(report, "ingest").endswith("**not met** |")
    assert "0.25 (empty / full)" in row(report, "erasure p50")
    assert row(report, "erasure p50").endswith("**not met** |")


def test_the_section_replaces_its_old_self_and_survives_a_new_report() -> None:
    old = render(run(empty_rate=100, full_rate=50, empty_p50=1000, full_p50=4000))
    new = render(run(empty_rate=100, full_rate=90, empty_p50=1000, full_p50=1100))
    report = splice("# Benchmark report\n\n## Targets\n", old)

    updated = splice(report, new)

    assert updated.startswith("# Benchmark report\n\n## Targets\n")
    assert kept_section(updated) == new
    assert updated.count("## Size independence") == 1
    assert kept_section("# Benchmark report\n") is None
