"""The benchmark report judges each figure against its target from the same run's numbers."""

from __future__ import annotations

from typing import Any

from bench.render import render, targets

MACHINE = {"cpus": 2, "cpu_model": "test"}
RTT = {"p50_ms": 2.0, "p99_ms": 5.0}


def results(*, ingest_ratio: float, e2e_p99: float, in_crm: int, erasure_p99: float) -> Any:
    return {
        "ingest": {
            "machine": MACHINE,
            "clients": 32,
            "seconds": 20,
            "api": {"per_second": 1000 * ingest_ratio, "p50_ms": 10, "p99_ms": 30},
            "api_failures": 0,
            "bare_producer": {"per_second": 1000, "p50_ms": 2, "p99_ms": 5},
            "ratio": ingest_ratio,
        },
        "e2e_target": {
            "machine": MACHINE,
            "target_rate": 500,
            "offered_rate": 480,
            "seconds": 5,
            "leads": 2500,
            "accepted": 2500,
            "in_crm": in_crm,
            "errors": [],
            "answer_to_crm_p50_ms": e2e_p99 / 2,
            "answer_to_crm_p99_ms": e2e_p99,
            "capture_to_crm_p50_ms": e2e_p99,
            "capture_to_crm_p99_ms": e2e_p99 * 2,
            "kafka_round_trip": RTT,
        },
        "erasure": {
            "machine": MACHINE,
            "subjects": 50,
            "rate": 5,
            "completed": 50,
            "crm_records_before": 50,
            "crm_records_after": 0,
            "p50_ms": erasure_p99 / 2,
            "p99_ms": erasure_p99,
            "max_ms": erasure_p99,
            "kafka_round_trip": RTT,
        },
    }


def with_replay(data: Any, ratio: float) -> Any:
    data["replay"] = {
        "machine": MACHINE,
        "service": "lead-ingest",
        "events": 2000,
        "bare_consumer": {"seconds": 1.0, "per_second": 1000.0},
        "replay": {
            "seconds": 2.0,
            "per_second": 1000.0 * ratio,
            "read": 2000,
            "written": 400,
            "failed": 0,
        },
        "ratio": ratio,
    }
    return data


def test_replay_is_judged_against_the_bare_consumer() -> None:
    base = results(ingest_ratio=0.5, e2e_p99=100, in_crm=2500, erasure_p99=100)
    assert verdicts(with_replay(base, 0.5))["replay"] is True
    slow = with_replay(results(ingest_ratio=0.5, e2e_p99=100, in_crm=2500, erasure_p99=100), 0.01)
    assert verdicts(slow)["replay"] is False
    assert "bare aiokafka consumer reading the same topic at 1,000 events/s" in render(slow)


def verdicts(data: Any) -> dict[str, bool | None]:
    return {t.what.split(" (")[0].split(" p99")[0]: t.met for t in targets(data)}


def test_each_target_is_met_or_not_from_the_figures() -> None:
    good = verdicts(results(ingest_ratio=0.5, e2e_p99=200, in_crm=2500, erasure_p99=800))
    assert good == {
        "ingest throughput": True,
        "POST -> CRM": True,
        "erasure request -> erasure.completed": True,
        "replay": None,
    }
    bad = verdicts(results(ingest_ratio=0.39, e2e_p99=260, in_crm=2500, erasure_p99=1001))
    assert set(bad.values()) == {False, None}


def test_leads_missing_from_the_crm_fail_the_latency_target_however_fast_the_rest() -> None:
    data = results(ingest_ratio=0.5, e2e_p99=100, in_crm=2499, erasure_p99=100)
    assert verdicts(data)["POST -> CRM"] is False
    assert "2499/2500 reached the CRM" in render(data)


def test_the_report_names_the_machine_and_the_baselines() -> None:
    text = render(results(ingest_ratio=0.1, e2e_p99=300, in_crm=2500, erasure_p99=900))
    assert "| cpu_model | test |" in text
    assert "bare aiokafka producer 1,000/s" in text
    assert "**not met**" in text


def test_the_bare_http_producer_is_shown_as_the_ingest_ceiling_when_measured() -> None:
    data = results(ingest_ratio=0.01, e2e_p99=300, in_crm=2500, erasure_p99=900)
    assert "ceiling" not in render(data), "results from before the ceiling was measured"
    data["ingest"]["bare_http_producer"] = {"per_second": 100, "p50_ms": 20, "p99_ms": 70}
    data["ingest"]["bare_http_failures"] = 0
    data["ingest"]["ceiling_ratio"] = 0.1
    text = render(data)
    assert "(measured 1.0%; the bare HTTP producer, the ceiling of any ingest" in text
    assert "stack: 10.0%)" in text
    assert "| bare HTTP producer (FastAPI + uvicorn + aiokafka, nothing else) | 100 |" in text
    assert verdicts(data)["ingest throughput"] is False


def test_an_offered_rate_the_harness_could_not_reach_is_explained() -> None:
    data = results(ingest_ratio=0.1, e2e_p99=300, in_crm=2500, erasure_p99=900)
    assert "(achieved 480/s);" in render(data), "480 of 500 is close enough: no excuse"
    data["e2e_target"]["offered_rate"] = 3
    assert "(achieved 3/s: bench/e2e_latency.py keeps a bounded number" in render(data)


def round_trips(per_lead: float, per_erasure: float) -> Any:
    def phase(commands: float) -> dict[str, Any]:
        return {
            "store_commands": commands,
            "offset_commits": 1.0,
            "store_commands_by_service": {"lead-ingest": commands},
        }

    return {
        "machine": MACHINE,
        "leads": 240,
        "erasures": 60,
        "clients": 32,
        "idle_per_second": phase(0.0),
        "per_lead_capture": phase(per_lead / 2),
        "per_lead_qualify_push": phase(per_lead / 2),
        "per_erasure": phase(per_erasure),
    }


def test_the_store_round_trips_are_judged_against_the_budget_and_shown_by_service() -> None:
    data = results(ingest_ratio=0.5, e2e_p99=100, in_crm=2500, erasure_p99=100)
    data["roundtrips"] = round_trips(per_lead=12.0, per_erasure=15.0)
    found = verdicts(data)
    assert found["store round trips per lead, capture through CRM push"] is True
    assert found["store round trips per erasure"] is True
    data["roundtrips"] = round_trips(per_lead=12.5, per_erasure=15.5)
    found = verdicts(data)
    assert found["store round trips per lead, capture through CRM push"] is False
    assert found["store round trips per erasure"] is False
    text = render(data)
    assert "| per erasure | 15.50 | 0.00 | 0.00 | 0.00 | 0.00 | 15.50 | 1.00 |" in text


def test_the_whole_run_is_judged_against_twenty_minutes_unless_it_was_quick() -> None:
    data = results(ingest_ratio=0.5, e2e_p99=200, in_crm=2500, erasure_p99=800)
    row = "| a full `make bench`, start to finish (fresh stack included) |"
    assert f"{row} 7.5 min | - | <= 20 min | met |" in render(data, elapsed_s=450)
    assert f"{row} 20.1 min | - | <= 20 min | **not met** |" in render(data, elapsed_s=1206)
    assert f"{row} 1.0 min | - | <= 20 min | not measured |" in render(
        data, quick=True, elapsed_s=60
    )
    assert row not in render(data)
