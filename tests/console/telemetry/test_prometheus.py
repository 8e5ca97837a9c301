"""The opt-in /metrics endpoint serves the telemetry over real HTTP on loopback, parsed by prometheus_client."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from console.telemetry import GpuSampler, PrometheusExporter, PrometheusPortInUse, TelemetryService
from console.telemetry.errors import InvalidTelemetrySetting
from tests.engine_figures import ScriptedEngineFigures
from tests.fake_nvml import FakeGpu, FakeNvml


@pytest.fixture
def engine_figures():
    figures = ScriptedEngineFigures(max_batch_size=4)
    figures.finish(total_s=0.3, ttft_s=0.02)
    figures.finish(total_s=0.7, ttft_s=0.2)
    figures.finish(total_s=3.0, ttft_s=0.4)
    figures.waiting, figures.running = 2, 3
    return figures


@pytest.fixture
def service(engine_figures):
    nvml = FakeNvml(FakeGpu(utilization=93, temperature=91, memory_used=10 * 2**30, processes=[(4242, 2**30)]))
    return TelemetryService(engine_figures.snapshot, gpu_sampler=GpuSampler(nvml=nvml))


@pytest.fixture
def exporter(service):
    exporter = PrometheusExporter(service, port=0)
    exporter.start()
    yield exporter
    exporter.stop()


def scrape(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode("utf-8")
    return {family.name: family for family in text_string_to_metric_families(text)}


def samples(family, name: str | None = None) -> dict[tuple, float]:
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples if name is None or s.name == name}


def test_the_endpoint_listens_on_loopback_by_default(exporter):
    assert exporter.host == "127.0.0.1" and exporter.url == f"http://127.0.0.1:{exporter.port}/metrics"


def test_gpu_figures_are_served_in_base_units_per_gpu(service, exporter):
    service.sample_once()
    families = scrape(exporter.url)
    gpu = (("gpu", "0"), ("name", "NVIDIA Fake A100"))
    assert families["llm_console_gpu_utilization_ratio"].type == "gauge"
    assert samples(families["llm_console_gpu_utilization_ratio"]) == {gpu: 0.93}
    assert samples(families["llm_console_gpu_memory_used_bytes"]) == {gpu: 10 * 2**30}
    assert samples(families["llm_console_gpu_temperature_celsius"]) == {gpu: 91.0}
    assert samples(families["llm_console_gpu_power_watts"]) == {gpu: 60.0}
    assert samples(families["llm_console_gpu_sm_clock_hertz"]) == {gpu: 1410e6}
    process = samples(families["llm_console_gpu_process_memory_bytes"])
    assert list(process.values()) == [2**30] and dict(next(iter(process)))["pid"] == "4242"


def test_engine_histograms_come_from_the_snapshot_buckets(service, exporter):
    service.sample_once()
    families = scrape(exporter.url)
    ttft = families["llm_console_time_to_first_token_seconds"]
    assert ttft.type == "histogram"
    buckets = {dict(labels)["le"]: value for labels, value in samples(ttft, "llm_console_time_to_first_token_seconds_bucket").items()}
    assert (buckets["0.025"], buckets["0.25"], buckets["0.5"], buckets["+Inf"]) == (1, 2, 3, 3)
    assert samples(ttft, "llm_console_time_to_first_token_seconds_count") == {(): 3}
    assert samples(ttft, "llm_console_time_to_first_token_seconds_sum")[()] == pytest.approx(0.62)
    latency = families["llm_console_request_duration_seconds"]
    assert samples(latency, "llm_console_request_duration_seconds_count") == {(): 3}
    assert samples(latency, "llm_console_request_duration_seconds_sum")[()] == pytest.approx(4.0)


def test_queue_batch_and_request_counters_are_served(service, exporter):
    service.sample_once()
    families = scrape(exporter.url)
    assert samples(families["llm_console_requests_waiting"]) == {(): 2}
    assert samples(families["llm_console_requests_running"]) == {(): 3}
    assert samples(families["llm_console_batch_occupancy_ratio"]) == {(): 0.75}
    requests = families["llm_console_requests"]
    assert requests.type == "counter"
    assert samples(requests) == {(("outcome", "finished"),): 3, (("outcome", "failed"),): 0, (("outcome", "cancelled"),): 0}
    assert samples(families["llm_console_generated_tokens"]) == {(): 48}
    recent = samples(families["llm_console_request_duration_recent_seconds"])
    assert recent[(("quantile", "0.99"),)] == 3.0


def test_system_figures_and_firing_alerts_are_served(service, exporter, engine_figures):
    engine_figures.finish(total_s=3.0, ttft_s=0.9)
    service.sample_once()
    families = scrape(exporter.url)
    assert 0 < samples(families["llm_console_memory_used_bytes"])[()] < samples(families["llm_console_memory_total_bytes"])[()]
    assert samples(families["llm_console_process_resident_memory_bytes"])[()] > 0
    assert all(0 <= v <= 1 for v in samples(families["llm_console_cpu_core_utilization_ratio"]).values())
    firing = samples(families["llm_console_alert_firing"])
    assert firing == {
        (("rule", "Slow first token"), ("subject", "Engine")): 1.0,
        (("rule", "GPU too hot"), ("subject", "GPU 0")): 1.0,
    }


def test_before_the_first_sample_the_endpoint_answers_empty(exporter):
    assert scrape(exporter.url) == {}


def test_other_paths_are_not_found(exporter):
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(exporter.url.replace("/metrics", "/secret"), timeout=10)
    assert error.value.code == 404


def test_a_taken_port_is_refused_with_a_message_naming_it(service):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        exporter = PrometheusExporter(service, port=port)
        with pytest.raises(PrometheusPortInUse, match=f"Port {port} on 127.0.0.1 is already in use"):
            exporter.start()
        assert not exporter.running


def test_stopping_frees_the_port(service, exporter):
    port = exporter.port
    exporter.stop()
    again = PrometheusExporter(service, port=port)
    again.start()
    try:
        service.sample_once()
        assert "llm_console_cpu_utilization_ratio" in scrape(again.url)
    finally:
        again.stop()


@pytest.mark.parametrize("port", [-1, 65536, "9479"])
def test_a_port_outside_the_range_is_refused(service, port):
    with pytest.raises(InvalidTelemetrySetting, match="from 1 to 65535"):
        PrometheusExporter(service, port=port)


def test_an_address_beyond_loopback_is_refused_unless_remote_serving_is_allowed(service):
    with pytest.raises(InvalidTelemetrySetting, match="serves this machine only, so it will not listen on 0.0.0.0.*"
                                                      "prometheus.allow_remote"):
        PrometheusExporter(service, port=0, host="0.0.0.0")


def test_allowed_remote_serving_listens_and_warns(service, caplog):
    exporter = PrometheusExporter(service, port=0, host="0.0.0.0", allow_remote=True)
    with caplog.at_level("WARNING", logger="console.telemetry.prometheus_exporter"):
        exporter.start()
    try:
        assert "listens on 0.0.0.0: every machine that can reach port" in caplog.text
        service.sample_once()
        assert "llm_console_cpu_utilization_ratio" in scrape(f"http://127.0.0.1:{exporter.port}/metrics")
    finally:
        exporter.stop()


def test_ipv6_loopback_is_served(service):
    exporter = PrometheusExporter(service, port=0, host="::1")
    exporter.start()
    try:
        service.sample_once()
        assert "llm_console_cpu_utilization_ratio" in scrape(f"http://[::1]:{exporter.port}/metrics")
    finally:
        exporter.stop()


def half_sent(port: int) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port), timeout=10)
    connection.sendall(b"GET /metr")  # and never the rest of the request line
    return connection


def closed_by_server(connections: list[socket.socket], wanted: int, deadline_s: float) -> int:
    """Wait (on the sockets, not a clock) until `wanted` of them were closed by the server; returns how many."""
    import select
    import time

    open_ones, closed = list(connections), 0
    end = time.monotonic() + deadline_s
    while closed < wanted and open_ones and time.monotonic() < end:
        readable, _, _ = select.select(open_ones, [], [], max(0.0, end - time.monotonic()))
        for connection in readable:
            if connection.recv(1) == b"":
                closed += 1
                open_ones.remove(connection)
    return closed


def test_a_half_sent_request_is_dropped_after_the_read_timeout(service):
    exporter = PrometheusExporter(service, port=0, read_timeout_s=0.3)
    exporter.start()
    connection = half_sent(exporter.port)
    try:
        assert closed_by_server([connection], 1, deadline_s=10) == 1
    finally:
        connection.close()
        exporter.stop()


def test_many_half_sent_connections_keep_the_thread_count_bounded(service):
    import threading

    exporter = PrometheusExporter(service, port=0, max_connections=4)
    exporter.start()
    before = threading.active_count()
    connections = [half_sent(exporter.port) for _ in range(60)]
    try:
        assert closed_by_server(connections, 56, deadline_s=10) == 56  # all but the four being read
        assert threading.active_count() <= before + 4
    finally:
        for connection in connections:
            connection.close()
        exporter.stop()
