"""The engine panel drives the live knobs and shows figures and quality per configuration."""

from __future__ import annotations

import pytest



@pytest.fixture
def window(tiny_window):
    return tiny_window


def test_changing_knobs_in_the_panel_changes_the_engine_live(window):
    panel = window.engine_panel
    panel.max_batch_size.setValue(3)
    panel.max_wait_ms.setValue(20)
    panel.response_cache.setChecked(False)
    settings = window.adapter.core.engine_settings
    assert (settings.max_batch_size, settings.max_wait_ms, settings.response_cache) == (3, 20, False)


def test_figures_show_finished_requests_after_a_reply(window, qtbot):
    chat = window.chat_panel
    chat.controls.max_new_tokens.setValue(12)
    chat.input.setPlainText("hello")
    with qtbot.waitSignal(window.adapter.generation_finished, timeout=60_000):
        chat.send()
    window.engine_panel.refresh()
    assert window.engine_panel.figures["requests"].text() == "1 / 0 / 0"
    # the tiny Llama runs on the lean decoder; `auto` may pick bf16 on an AMX CPU, whose weights are then packed
    packed = window.adapter.model_info.precision == "bf16"
    assert window.engine_panel.figures["decoder"].text() == ("lean, bf16 packed for oneDNN" if packed else "lean")
    assert window.engine_panel.quality_table.item(0, 4).text() != "–"


def test_measuring_perplexity_fills_the_configuration_row(window, qtbot):
    panel = window.engine_panel
    with qtbot.waitSignal(window.adapter.perplexity_measured, timeout=60_000):
        panel.measure_button.click()
    row = [panel.quality_table.item(0, column).text() for column in range(5)]
    assert row[0] == "tiny-llama" and row[1] == "auto · cpu".replace("auto", window.adapter.model_info.precision)
    assert float(row[3]) > 1
    assert "perplexity" in panel.quality_status.text()
