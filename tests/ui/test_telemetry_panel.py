"""The telemetry dashboard draws scripted GPU and engine figures, pauses, exports, and shows alerts."""

from __future__ import annotations

import csv
import socket
import urllib.request

import pytest
from PySide6.QtWidgets import QApplication
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage

from console.telemetry import DEFAULT_RULES, GpuSampler, TelemetryService
from console.telemetry.monitor import TelemetryMonitor
from tests.fake_nvml import FakeNvml
from ui.adapters.engine_adapter import EngineAdapter
from ui.main_window import MainWindow
from ui.adapters.telemetry_adapter import TelemetryAdapter
from ui.telemetry.telemetry_panel import TelemetryPanel
from tests.access_helpers import admin_core
from ui.access.desktop_session import DesktopSession


@pytest.fixture
def telemetry(nvml, engine_figures):
    """Telemetry without its thread: each test takes samples itself with sample_once()."""
    adapter = TelemetryAdapter(TelemetryMonitor(TelemetryService(engine_figures.snapshot, gpu_sampler=GpuSampler(nvml=nvml))))
    yield adapter
    adapter.shutdown()


@pytest.fixture
def panel(qtbot, telemetry):
    widget = TelemetryPanel(telemetry)
    qtbot.addWidget(widget)
    widget.resize(1200, 800)
    widget.show()
    return widget


def curve_values(panel, chart: str, series: str) -> list[float]:
    _x, y = panel.charts[chart].curves[series].getData()
    return [] if y is None else [float(v) for v in y]


def play(telemetry, nvml, gpu: int, **series) -> None:
    for step in range(len(next(iter(series.values())))):
        nvml.set(gpu, **{name: values[step] for name, values in series.items()})
        telemetry.service.sample_once()
    QApplication.processEvents()  # the adapter relays the sampler's news to the UI thread through Qt's queue


# --- charts -------------------------------------------------------------------------------------------------
def test_each_gpu_gets_its_own_series_and_current_value(panel, telemetry, nvml):
    play(telemetry, nvml, 0, utilization=[91, 92, 93])
    nvml.set(1, utilization=16)
    telemetry.service.sample_once()
    panel.redraw(all_charts=True)
    assert curve_values(panel, "gpu_utilization", "gpu0_utilization_percent") == [91, 92, 93, 93]
    assert curve_values(panel, "gpu_utilization", "gpu1_utilization_percent") == [50, 50, 50, 16]
    assert panel.charts["gpu_utilization"].values_text() == "GPU 0 93 %\nGPU 1 16 %"


def test_gpu_processes_are_listed_beside_the_gpu_charts(panel, telemetry, nvml):
    nvml.set(0, processes=[(4242, 3 * 2**30)])
    telemetry.service.sample_once()
    panel.redraw(all_charts=True)
    text = panel.gpu_card.body.text()
    assert "GPU 0 · NVIDIA Fake A100 · 1.0 of 40.0 GiB" in text and "(pid 4242)  3.0 GiB" in text


def test_without_a_gpu_the_dashboard_says_so_and_draws_the_rest(qtbot, engine_figures):
    adapter = TelemetryAdapter(TelemetryMonitor(TelemetryService(engine_figures.snapshot, gpu_sampler=GpuSampler(nvml=FakeNvml(driver_loaded=False)))))
    panel = TelemetryPanel(adapter)
    qtbot.addWidget(panel)
    try:
        assert panel.gpu_card.body.text().startswith("No NVIDIA GPU detected.")
        assert not any(key.startswith("gpu") for key in panel.charts)
        adapter.service.sample_once()
        panel.redraw(all_charts=True)
        assert len(curve_values(panel, "cpu", "cpu_percent")) == 1
        assert "all cores" in panel.charts["cpu"].values_text()
        assert "RAM total" in panel.charts["memory"].values_text()
        ttft = panel.charts["ttft"]
        assert ttft.empty.text() == "No finished request yet" and not ttft.empty.isHidden()
        assert ttft.values_text() == "p50 –\np95 –\np99 –"
    finally:
        adapter.shutdown()


def test_the_timer_redraws_visible_charts_as_samples_arrive(qtbot, panel, telemetry, engine_figures):
    engine_figures.finish(total_s=0.3)
    telemetry.service.sample_once()
    telemetry.service.sample_once()
    # No redraw() call here: the panel's 10 Hz timer draws the chart, which is on screen.
    qtbot.waitUntil(lambda: curve_values(panel, "requests", "requests_finished") == [1.0, 1.0], timeout=5000)
    assert panel.charts["requests"].values_text().splitlines()[0] == "finished 1"


def test_pause_stops_redrawing_but_not_sampling(panel, telemetry, nvml):
    play(telemetry, nvml, 0, utilization=[60])
    panel.redraw(all_charts=True)
    panel.pause_button.click()
    assert panel.pause_button.text() == "Resume" and "sampling goes on" in panel.state_label.text()
    play(telemetry, nvml, 0, utilization=[70, 80])
    panel.redraw(all_charts=True)
    assert curve_values(panel, "gpu_utilization", "gpu0_utilization_percent") == [60]
    assert len(telemetry.service.history) == 3
    panel.pause_button.click()
    panel.redraw(all_charts=True)
    assert curve_values(panel, "gpu_utilization", "gpu0_utilization_percent") == [60, 70, 80]


def test_the_window_selector_shows_the_last_minute_ten_minutes_or_hour(panel, telemetry):
    history = telemetry.service.history
    start = 1_800_000_000.0
    for second in range(0, 3600, 10):  # an hour of samples every 10 s
        history.append(start + second, {"cpu_percent": float(second)})
    spans = {}
    for label in ("1 min", "10 min", "1 h"):
        panel.window_combo.setCurrentText(label)
        panel.redraw(all_charts=True)
        x, _y = panel.charts["cpu"].curves["cpu_percent"].getData()
        view = panel.charts["cpu"].plot.getPlotItem().viewRange()[0]
        spans[label] = (round(view[1] - view[0]), round(x[-1] - x[0]))
    assert spans == {"1 min": (60, 60), "10 min": (600, 600), "1 h": (3600, 3590)}


def test_the_interval_selector_changes_how_often_it_samples(panel, telemetry):
    panel.interval_combo.setCurrentText("100 ms")
    assert telemetry.service.interval_s == 0.1
    assert telemetry.service.history.capacity == 36_000


# --- export -------------------------------------------------------------------------------------------------
def test_csv_export_writes_every_buffered_sample(panel, telemetry, nvml, tmp_path):
    play(telemetry, nvml, 0, utilization=[10, 20, 30])
    path = tmp_path / "telemetry.csv"
    assert panel.export_csv(path) == 3
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    assert [row["gpu0_utilization_percent"] for row in rows] == ["10", "20", "30"]
    assert panel.state_label.text() == f"Saved 3 samples to {path}"


def test_a_chart_saves_as_png(panel, telemetry, nvml, tmp_path):
    play(telemetry, nvml, 0, utilization=[10, 20, 30])
    path = tmp_path / "gpu.png"
    panel.save_chart_png("gpu_utilization", path)
    image = QImage(str(path))
    assert not image.isNull() and image.width() > 300 and image.height() > 100
    assert "Saved the GPU utilisation chart" in panel.state_label.text()


# --- alerts -------------------------------------------------------------------------------------------------
def test_a_firing_alert_enters_the_log_newest_first(panel, telemetry, nvml):
    assert panel.alerts.alert_list.item(0).text().startswith("No alerts yet. Watching: p99 time to first token > 500 ms;")
    play(telemetry, nvml, 0, utilization=[95, 96, 97])
    assert "⚠ GPU 0: GPU utilisation > 90 % for 3 samples (now 97 %) — consider a larger batch or another GPU" in panel.alerts.alert_list.item(0).text()
    assert "1 firing now" in panel.alerts.active_label.text()
    play(telemetry, nvml, 0, utilization=[30])
    assert "✓ Resolved: GPU 0: GPU saturated (now 30 %)" in panel.alerts.alert_list.item(0).text()
    assert panel.alerts.alert_list.count() == 2 and "Nothing firing" in panel.alerts.active_label.text()


def test_the_rules_editor_changes_a_threshold(panel, telemetry, nvml):
    editor = panel.alerts.edit_rules()
    row = [editor.table.item(r, 1).text() for r in range(editor.table.rowCount())].index("GPU too hot")
    editor.table.cellWidget(row, 4).setValue(60)
    assert editor.apply()
    play(telemetry, nvml, 1, temperature=[65])
    assert [event.rule for event in telemetry.service.alerts.active()] == ["GPU too hot"]
    editor.close()


def test_the_rules_editor_refuses_a_rule_without_a_name_and_keeps_the_old_rules(panel, telemetry):
    before = telemetry.service.alerts.rules
    editor = panel.alerts.edit_rules()
    editor.table.item(0, 1).setText("  ")
    assert not editor.apply()
    assert "needs a name" in editor.error.text()
    assert telemetry.service.alerts.rules == before
    editor.close()


def test_added_and_removed_rules_apply(panel, telemetry):
    editor = panel.alerts.edit_rules()
    editor.add_button.click()
    editor.table.selectRow(0)
    editor.remove_button.click()
    assert editor.apply()
    names = [rule.name for rule in telemetry.service.alerts.rules]
    assert names[0] == "Slow token stream" and names[-1] == "New rule" and len(names) == len(DEFAULT_RULES)
    editor.close()


# --- Prometheus -------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_prometheus_switch_serves_metrics_on_loopback(panel, telemetry):
    telemetry.service.sample_once()
    panel.prometheus.port_spin.setValue(free_port())
    panel.prometheus.check.setChecked(True)
    url = f"http://127.0.0.1:{panel.prometheus.port_spin.value()}/metrics"
    assert panel.prometheus.status.text() == f"Serving {url}"
    with urllib.request.urlopen(url, timeout=10) as response:
        assert b"llm_console_gpu_utilization_ratio{" in response.read()
    panel.prometheus.check.setChecked(False)
    assert panel.prometheus.status.text() == "Off" and telemetry.exporter is None


def test_a_taken_prometheus_port_is_reported_and_the_switch_turns_off(panel):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        panel.prometheus.port_spin.setValue(port)
        panel.prometheus.check.setChecked(True)
    assert not panel.prometheus.check.isChecked()
    assert panel.prometheus.status.text().startswith(f"⚠ Port {port} on 127.0.0.1 is already in use")


# --- in the main window -------------------------------------------------------------------------------------------
@pytest.fixture
def window(qtbot, tmp_path, telemetry):
    core, admin = admin_core(tmp_path / "data")
    main_window = MainWindow(EngineAdapter(core, DesktopSession(core, admin)), telemetry=telemetry)
    qtbot.addWidget(main_window)
    main_window.show()
    yield main_window
    main_window.shutdown()


def test_the_window_has_a_telemetry_tab(window):
    titles = [window.tabs.tabText(i) for i in range(window.tabs.count())]
    assert "Telemetry" in titles and window.tabs.widget(titles.index("Telemetry")) is window.telemetry_panel


def test_a_firing_alert_shows_in_the_status_bar_and_leads_to_the_dashboard(window, telemetry, nvml, qtbot):
    assert window.alert_status.text() == "No alerts"
    play(telemetry, nvml, 1, memory_used=[int(39 * 2**30)])
    assert window.alert_status.text().startswith("⚠ GPU 1: GPU memory > 95 % (now 98 %)")
    play(telemetry, nvml, 0, temperature=[90])
    assert window.alert_status.text().startswith("⚠ 2 alerts · GPU 0: GPU temperature > 85 °C")
    qtbot.mouseClick(window.alert_status, Qt.MouseButton.LeftButton)
    assert window.tabs.currentWidget() is window.telemetry_panel
    play(telemetry, nvml, 0, temperature=[50])
    play(telemetry, nvml, 1, memory_used=[2**30])
    assert window.alert_status.text() == "No alerts"


def test_the_dashboard_charts_the_real_engine_generating(qtbot, tmp_path, tiny_model_dir):
    from engine import ModelSpec

    core, admin = admin_core(tmp_path / "data")
    session = DesktopSession(core, admin)
    monitor = core.start_telemetry(gpu_sampler=GpuSampler(nvml=FakeNvml(driver_loaded=False)), interval_s=60)
    telemetry = TelemetryAdapter(monitor, lambda: session.principal)
    window = MainWindow(EngineAdapter(core, session), telemetry=telemetry)
    qtbot.addWidget(window)
    window.show()
    try:
        with qtbot.waitSignal(window.adapter.load_finished, timeout=60_000):
            window.adapter.load(ModelSpec(str(tiny_model_dir), precision="fp32", device="cpu"))
        window.chat_panel.controls.max_new_tokens.setValue(12)
        window.chat_panel.input.setPlainText("hello")
        with qtbot.waitSignal(window.adapter.generation_finished, timeout=60_000):
            window.chat_panel.send()
        telemetry.service.sample_once()
        panel = window.telemetry_panel
        panel.redraw(all_charts=True)
        assert panel.charts["requests"].values_text().splitlines()[0] == "finished 1"
        assert curve_values(panel, "throughput", "decode_tokens_per_second")[-1] > 0
        assert curve_values(panel, "latency", "latency_p99_s")[-1] > 0  # in ms on the chart
    finally:
        window.shutdown()
