"""The console's charts (geometry) and what it reads from the services' metrics."""

from __future__ import annotations

from console.charts import HEIGHT, WIDTH, bar_chart
from console.sampler import MetricsSampler, Sample, parse_metrics, service_urls_from_env
from console.templating import shown, when

METRICS = """\
# HELP leadtrail_events_published_total Events published
# TYPE leadtrail_events_published_total counter
leadtrail_events_published_total{service="crm-sync",type="crm.lead_synced"} 7.0
leadtrail_events_published_total{service="crm-sync",type="erasure.receipt"} 3.0
# HELP leadtrail_crm_connection_circuit circuit
# TYPE leadtrail_crm_connection_circuit gauge
leadtrail_crm_connection_circuit{connection="acme/hubspot",service="crm-sync",state="closed"} 0.0
leadtrail_crm_connection_circuit{connection="acme/hubspot",service="crm-sync",state="open"} 1.0
# HELP leadtrail_consumer_lag lag
# TYPE leadtrail_consumer_lag gauge
leadtrail_consumer_lag{group="crm-sync.leads",partition="0",topic="lead-events"} 4.0
leadtrail_consumer_lag{group="crm-sync.leads",partition="1",topic="lead-events"} 2.0
"""


def test_bars_scale_to_the_largest_and_fill_the_width() -> None:
    chart = bar_chart("t", [("a", 1.0), ("b", 4.0), ("c", 0.0)], label_every=2)
    a, b, c = chart.bars
    assert chart.peak == 4.0
    assert b.height == HEIGHT - 20
    assert b.y == 0
    assert a.height == (HEIGHT - 20) / 4
    assert c.height == 0
    assert round(c.x + c.width) == WIDTH
    assert [bar.labelled for bar in chart.bars] == [True, False, True]
    assert bar_chart("empty", []).bars == []


def test_metrics_give_events_circuits_and_lag() -> None:
    parsed = parse_metrics(METRICS)
    assert parsed.published == 10.0
    assert parsed.circuits == {"acme/hubspot": "open"}
    assert parsed.lag == {"crm-sync.leads": 6.0}


def test_events_per_second_skip_a_service_missing_from_a_pair() -> None:
    sampler = MetricsSampler({}, interval_s=5, timeout_s=1)
    sampler.samples.extend(
        [
            Sample(100.0, {"a": 10.0, "b": 5.0}, {}),
            Sample(105.0, {"a": 60.0}, {}, unreachable={"b": "timeout"}),
            Sample(110.0, {"a": 110.0, "b": 50.0}, {}),
        ]
    )
    rates = [rate for _, rate in sampler.events_per_second()]
    assert rates == [10.0, 10.0]


def test_service_urls_come_from_the_stack_environment() -> None:
    env = {"LEADTRAIL_CRM_SYNC_URL": "http://127.0.0.1:1/", "LEADTRAIL_OTHER_URL": "x"}
    assert service_urls_from_env(env) == {"crm-sync": "http://127.0.0.1:1"}


def test_cells_show_times_lists_and_objects_compactly() -> None:
    assert shown("2026-12-06T05:47:34.066000+00:00") == "2026-12-06 05:47 UTC"
    assert shown("2026-11-02T09:15:03Z") == "2026-11-02 09:15 UTC"
    assert shown(["a", "b"]) == "a, b"
    assert shown({"k": 1, "t": None}) == "k: 1; t: "
    assert shown(None) == ""
    assert when(None) == ""
