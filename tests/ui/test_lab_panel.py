"""The Lab tab: it runs a sweep in a worker, plots the stored results, applies the answer; the model bar shows
the memory estimate and a load that will not fit offers "load anyway"."""

from __future__ import annotations

import pytest

from console.lab.plan import SweepPlan
from tests.console.lab.lab_helpers import run_tiny_sweep


@pytest.fixture
def lab_window(admin_window, qtbot, tiny_model_dir):
    admin_window.model_bar.add_model_path(str(tiny_model_dir))
    admin_window.model_bar.device_combo.setCurrentText("cpu")
    admin_window.tabs.setCurrentWidget(admin_window.lab_panel)
    return admin_window


@pytest.fixture
def swept_window(lab_window, tiny_model_dir):
    core = lab_window.adapter.core
    sweep_id = run_tiny_sweep(core, lab_window.session.principal, tiny_model_dir, SweepPlan(("fp32", "int8"), (1, 2), (1, 2), repetitions=3, new_tokens=3))
    lab_window.lab_panel.refresh(select=sweep_id)
    return lab_window


def test_the_lab_tab_plots_the_stored_results(swept_window):
    panel = swept_window.lab_panel
    charts = panel.charts
    throughput_points = sum(len(item.data) for item in charts.throughput.points)
    assert throughput_points == 4  # best batch size at each of 2 user counts, for 2 precisions
    assert sum(len(item.data) for item in charts.latency.points) == 8
    assert charts.labels and all(label.textItem.toPlainText() for label in charts.labels)  # Pareto points labelled
    assert panel.table.rowCount() == 8
    assert "best throughput" in panel.answers_label.text()


def test_hovering_a_point_shows_its_figures(swept_window):
    scatter = swept_window.lab_panel.charts.latency.points[0]
    tip = scatter.opts["tip"](x=0, y=0, data=scatter.data[0]["data"])
    assert "tok/s total" in tip and "TTFT p50" in tip and "ITL p50" in tip


def test_an_impossible_sla_says_none_qualifies_and_disables_apply(swept_window):
    panel = swept_window.lab_panel
    panel.ttft_limit.setValue(0.01)
    assert "No configuration meets the SLA" in panel.answers_label.text()
    assert not panel.apply_button.isEnabled()


def test_apply_sets_the_knobs_the_engine_panel_and_the_model_bar(swept_window):
    panel = swept_window.lab_panel
    panel.apply_button.click()
    recommendation = panel.answers.recommendation.record.point
    assert swept_window.adapter.core.engine_settings.max_batch_size == recommendation.batch_size
    assert swept_window.engine_panel.max_batch_size.value() == recommendation.batch_size
    assert swept_window.model_bar.precision_combo.currentText() == recommendation.precision
    assert "Applied" in panel.notice.text()


def test_the_charts_save_as_png(swept_window, tmp_path):
    path = tmp_path / "lab.png"
    assert swept_window.lab_panel.charts.save_png(str(path))
    assert path.stat().st_size > 1000


def plan_tiny_sweep(panel) -> None:
    """fp32 only, batch size 1, one and two users, three new tokens: two points, seconds on the tiny model."""
    for name, box in panel.precision_boxes.items():
        box.setChecked(name == "fp32")
    panel.batch_sizes.setText("1")
    panel.concurrency.setText("1,2")
    panel.new_tokens.setValue(3)


def test_run_sweep_measures_in_a_worker_and_shows_the_new_sweep(lab_window, qtbot):
    panel = lab_window.lab_panel
    plan_tiny_sweep(panel)
    with qtbot.waitSignal(lab_window.lab_adapter.sweep_finished, timeout=120_000):
        panel.run_button.click()
        assert panel.cancel_button.isEnabled()  # the UI thread is free while it runs
    assert panel.table.rowCount() == 2 and panel.sweep_combo.count() == 1
    assert "Sweep finished" in panel.notice.text()


def test_cancel_keeps_the_measured_points_and_enables_resume(lab_window, qtbot, monkeypatch):
    import console.lab.sweep_runner as sweep_runner

    calls = []
    real_drive_level = sweep_runner.drive_level

    def drive_level_held_after_three(*args, **kwargs):
        # The 4th repetition waits for the Cancel click: on a busy machine the tiny model's repetitions could
        # otherwise all finish before the UI thread handles the progress report that clicks Cancel.
        calls.append(1)
        if len(calls) == 4:
            lab_window.lab_adapter._cancel.wait(60)
        return real_drive_level(*args, **kwargs)

    monkeypatch.setattr(sweep_runner, "drive_level", drive_level_held_after_three)
    panel = lab_window.lab_panel
    plan_tiny_sweep(panel)
    lab_window.lab_adapter.sweep_progress.connect(lambda step: step.done == 3 and panel.cancel_button.click())
    with qtbot.waitSignal(lab_window.lab_adapter.sweep_cancelled, timeout=120_000):
        panel.run_button.click()
    assert panel.resume_button.isEnabled() and "cancelled" in panel.notice.text()
    with qtbot.waitSignal(lab_window.lab_adapter.sweep_finished, timeout=120_000):
        panel.resume_button.click()
    assert panel.table.rowCount() == 2


def test_the_model_bar_shows_the_memory_estimate_before_load(lab_window, qtbot):
    qtbot.waitUntil(lambda: "needs about" in lab_window.model_bar.estimate_label.text(), timeout=10_000)
    assert " free" in lab_window.model_bar.estimate_label.text()


def test_a_load_that_will_not_fit_offers_load_anyway(lab_window, qtbot, monkeypatch):
    import engine.weights.memory_estimate as memory_estimate

    monkeypatch.setattr(memory_estimate, "free_memory_bytes", lambda _device: 1000)  # the hardware boundary
    loading_when_refused = []
    lab_window.adapter.load_refused_for_memory.connect(lambda *_: loading_when_refused.append(lab_window.adapter.loading))
    with qtbot.waitSignal(lab_window.adapter.load_refused_for_memory, timeout=30_000):
        lab_window.model_bar.load_button.click()
    # The refusal arrives once the load counts as over: "load anyway" clicked at once is not "already loading".
    assert loading_when_refused == [False]
    assert "will not fit" in lab_window.model_bar.status_label.text()
    assert lab_window.adapter.model_info is None
    with qtbot.waitSignal(lab_window.adapter.load_finished, timeout=60_000):
        lab_window.load_anyway_button.click()
    assert lab_window.adapter.model_info is not None
