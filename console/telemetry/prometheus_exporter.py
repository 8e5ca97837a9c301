"""The opt-in Prometheus endpoint: GET /metrics serves the latest telemetry sample in the exposition format.

A custom collector turns the latest `TelemetryFrame` into metric families at scrape time (histograms straight
from the engine snapshot's cumulative buckets, nothing observed twice), registered in a private registry so
nothing else in the process leaks into the output. Bound to loopback: another address is refused unless the
`prometheus.allow_remote` setting allows it (then a warning is logged). A connection that sends nothing for
READ_TIMEOUT_S is dropped, and at most MAX_CONNECTIONS are served at once, so idle or half-sent connections
cannot pile up threads.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from console.telemetry.errors import InvalidTelemetrySetting, PrometheusPortInUse
from console.telemetry.service import TelemetryService

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9479
PREFIX = "llm_console_"
READ_TIMEOUT_S = 5.0  # a scrape sends its request at once; a connection silent this long is dropped
MAX_CONNECTIONS = 16  # served at once; more are closed at once (a scraper needs one)
_log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _gauge(name: str, documentation: str, value: float | None = None, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, documentation, value=value, labels=labels)


def _histogram(name: str, documentation: str, cumulative, total: float) -> HistogramMetricFamily:
    buckets = [(floatToGoString(bound), float(count)) for bound, count in cumulative]
    return HistogramMetricFamily(PREFIX + name, documentation, buckets=buckets, sum_value=total)


class TelemetryCollector(Collector):
    """Metric families from the service's latest sample; names follow Prometheus conventions (base units,
    `_ratio` for 0..1, `_total` for counters)."""

    def __init__(self, service: TelemetryService):
        self.service = service

    def collect(self) -> Iterator[Metric]:
        frame = self.service.latest
        if frame is None:
            return
        yield _gauge("telemetry_last_sample_timestamp_seconds", "When the figures below were sampled (Unix time).",
                     frame.timestamp)
        yield from self._gpu_families(frame)
        yield from self._system_families(frame)
        if frame.engine is not None:
            yield from self._engine_families(frame.engine)
        firing = _gauge("alert_firing", "1 for each alert rule firing now, per subject.", labels=["rule", "subject"])
        for event in self.service.alerts.active():
            firing.add_metric([event.rule, event.subject], 1.0)
        yield firing

    @staticmethod
    def _gpu_families(frame) -> Iterator[Metric]:
        yield _gauge("gpu_devices", "NVIDIA GPUs NVML reports (0: no NVIDIA GPU detected).", len(frame.gpus))
        labels = ["gpu", "name"]
        fields = [
            ("gpu_utilization_ratio", "Share of time a kernel ran on the GPU, 0..1.", "utilization_percent", 0.01),
            ("gpu_memory_used_bytes", "GPU memory in use.", "memory_used_bytes", 1),
            ("gpu_memory_total_bytes", "GPU memory in all.", "memory_total_bytes", 1),
            ("gpu_temperature_celsius", "GPU core temperature.", "temperature_c", 1),
            ("gpu_power_watts", "GPU power draw.", "power_w", 1),
            ("gpu_power_limit_watts", "GPU enforced power limit.", "power_limit_w", 1),
            ("gpu_sm_clock_hertz", "Streaming multiprocessor clock.", "sm_clock_mhz", 1e6),
            ("gpu_memory_clock_hertz", "Memory clock.", "memory_clock_mhz", 1e6),
        ]
        for name, documentation, field, scale in fields:
            family = _gauge(name, documentation, labels=labels)
            for gpu in frame.gpus:
                value = getattr(gpu, field)
                if value is not None:  # a field the device cannot report is left out, not zero
                    family.add_metric([str(gpu.index), gpu.name], value * scale)
            yield family
        processes = _gauge("gpu_process_memory_bytes", "GPU memory used per process.", labels=["gpu", "pid", "process"])
        for gpu in frame.gpus:
            for process in gpu.processes:
                if process.used_memory_bytes is not None:
                    processes.add_metric([str(gpu.index), str(process.pid), process.name], process.used_memory_bytes)
        yield processes

    @staticmethod
    def _system_families(frame) -> Iterator[Metric]:
        system = frame.system
        yield _gauge("cpu_utilization_ratio", "CPU use averaged over all cores, 0..1.", system.cpu_percent / 100)
        cores = _gauge("cpu_core_utilization_ratio", "CPU use per core, 0..1.", labels=["core"])
        for core, percent in enumerate(system.cpu_percent_per_core):
            cores.add_metric([str(core)], percent / 100)
        yield cores
        yield _gauge("memory_used_bytes", "System RAM in use (total minus available).", system.ram_used_bytes)
        yield _gauge("memory_total_bytes", "System RAM in all.", system.ram_total_bytes)
        yield _gauge("process_resident_memory_bytes", "Resident memory of the LLM Console process.",
                     system.process_rss_bytes)

    @staticmethod
    def _engine_families(engine) -> Iterator[Metric]:
        yield _histogram("time_to_first_token_seconds", "Time from submission to the first generated token.",
                         engine.ttft_histogram, engine.ttft_sum)
        yield _histogram("request_duration_seconds", "End-to-end latency of a request, submission to last token.",
                         engine.latency_histogram, engine.latency_sum)
        for name, documentation, values in (
            ("time_to_first_token_recent_seconds", "Time to first token percentiles over the last 512 requests.",
             (engine.ttft_p50, engine.ttft_p95, engine.ttft_p99)),
            ("request_duration_recent_seconds", "End-to-end latency percentiles over the last 512 requests.",
             (engine.latency_p50, engine.latency_p95, engine.latency_p99)),
        ):
            family = _gauge(name, documentation, labels=["quantile"])
            for quantile, value in zip(("0.5", "0.95", "0.99"), values):
                if value is not None:
                    family.add_metric([quantile], value)
            yield family
        yield _gauge("decode_tokens_per_second", "Generated tokens per second over the last 5 s.",
                     engine.decode_tokens_per_second)
        yield _gauge("prefill_tokens_per_second", "Prompt tokens prefilled per second over the last 5 s.",
                     engine.prefill_tokens_per_second)
        yield CounterMetricFamily(PREFIX + "prompt_tokens_total", "Prompt tokens prefilled.", engine.prompt_tokens_total)
        yield CounterMetricFamily(PREFIX + "generated_tokens_total", "Tokens generated.", engine.generated_tokens_total)
        yield _gauge("requests_waiting", "Requests queued, not yet running.", engine.waiting)
        yield _gauge("requests_running", "Requests in the running batch.", engine.running)
        yield _gauge("max_batch_size", "Requests the engine decodes together at most.", engine.max_batch_size)
        yield _gauge("batch_occupancy_ratio", "Running requests over the max batch size, 0..1.", engine.batch_occupancy)
        yield _gauge("kv_cache_tokens", "Token slots held in the KV cache.", engine.kv_cache_tokens)
        requests = CounterMetricFamily(PREFIX + "requests_total", "Requests ended, by outcome.", labels=["outcome"])
        requests.add_metric(["finished"], engine.requests_finished)
        requests.add_metric(["failed"], engine.requests_failed)
        requests.add_metric(["cancelled"], engine.requests_cancelled)
        yield requests
        yield CounterMetricFamily(PREFIX + "oom_backoffs_total", "Out-of-memory back-offs of the batch size.",
                                  engine.oom_backoffs)


def telemetry_registry(service: TelemetryService) -> CollectorRegistry:
    """A private registry of the service's figures only (nothing else in the process leaks into a scrape)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TelemetryCollector(service))
    return registry


def _handler_for(registry: CollectorRegistry, read_timeout_s: float) -> type[BaseHTTPRequestHandler]:
    class MetricsHandler(BaseHTTPRequestHandler):
        timeout = read_timeout_s  # each read of the request; a timed-out connection is closed
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                encoder, content_type = choose_encoder(self.headers.get("Accept"))
                self._reply(200, content_type, encoder(registry))
            elif path == "/":
                self._reply(200, "text/plain; charset=utf-8", b"LLM Console telemetry: scrape /metrics\n")
            else:
                self._reply(404, "text/plain; charset=utf-8", b"Not found: the figures are at /metrics\n")

        def _reply(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args) -> None:  # scrapes every few seconds would flood standard error
            pass

    return MetricsHandler


class _BoundedHTTPServer(ThreadingHTTPServer):
    """One thread per connection, but never more than `max_connections` of them: the rest are closed at once."""

    daemon_threads = True

    def __init__(self, address, handler, max_connections: int):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class PrometheusExporter:
    """Serves /metrics on host:port while started. Port 0 picks a free port (see `port` after start).

    `host` must be a loopback address unless `allow_remote` (the `prometheus.allow_remote` setting) is true."""

    def __init__(self, service: TelemetryService, port: int = DEFAULT_PORT, host: str = DEFAULT_HOST,
                 allow_remote: bool = False, read_timeout_s: float = READ_TIMEOUT_S,
                 max_connections: int = MAX_CONNECTIONS):
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise InvalidTelemetrySetting(f"The Prometheus port must be a number from 1 to 65535, not {port!r}.")
        if not is_loopback(host) and not allow_remote:
            raise InvalidTelemetrySetting(
                f"The Prometheus endpoint serves this machine only, so it will not listen on {host}. Use 127.0.0.1, "
                "or, to let other machines read the figures, first set prometheus.allow_remote to true."
            )
        self.service = service
        self.host = host
        self.port = port
        self.read_timeout_s = read_timeout_s
        self.max_connections = max_connections
        self.registry = telemetry_registry(service)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def start(self) -> None:
        if self._server is not None:
            return
        try:
            server = _BoundedHTTPServer((self.host, self.port), _handler_for(self.registry, self.read_timeout_s),
                                        self.max_connections)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise PrometheusPortInUse(
                    f"Port {self.port} on {self.host} is already in use, so the Prometheus endpoint cannot start. "
                    "Choose another port, or stop the program that listens there."
                ) from error
            if error.errno == errno.EACCES:
                raise InvalidTelemetrySetting(
                    f"Port {self.port} needs administrator rights; choose a port above 1023 for the Prometheus endpoint."
                ) from error
            raise InvalidTelemetrySetting(f"The Prometheus endpoint cannot listen on {self.host}:{self.port}: {error}.") from error
        self.port = server.server_address[1]
        if not is_loopback(self.host):
            _log.warning("The Prometheus endpoint listens on %s: every machine that can reach port %d reads the "
                         "telemetry (GPU use, process names, request figures), without a password.", self.host, self.port)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="llm-console-prometheus", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
