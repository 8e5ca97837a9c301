"""Limits are written once: the widgets take their ranges and choices from the settings store and the engine."""

from __future__ import annotations

import pytest

from ui.settings.settings_view import OTHER_TAB_PREFIXES
from console.settings.store import MAX_NEW_TOKENS, SETTINGS, SPECS, Choice, InvalidSetting, NumberRange
from engine.batching_settings import MAX_BATCH_SIZE, BatchingSettings
from engine.errors import InvalidRequest


def test_the_settings_view_offers_exactly_what_the_store_accepts(admin_window):
    fields = admin_window.settings_view.fields
    for spec in SETTINGS:
        if spec.key.startswith(OTHER_TAB_PREFIXES):
            assert spec.key not in fields  # the API tab edits these
            continue
        widget = fields[spec.key].widget
        if isinstance(spec.check, Choice):
            assert [widget.itemText(i) for i in range(widget.count())] == list(spec.check.options), spec.key
        elif isinstance(spec.check, NumberRange):
            assert (widget.minimum(), widget.maximum(), widget.suffix()) == (
                spec.check.low, spec.check.high, spec.check.unit), spec.key


def test_the_max_batch_size_limit_is_one_number_in_engine_settings_and_both_tabs(admin_window):
    assert admin_window.engine_panel.max_batch_size.maximum() == MAX_BATCH_SIZE
    assert admin_window.settings_view.fields["engine.max_batch_size"].widget.maximum() == MAX_BATCH_SIZE
    assert SPECS["engine.max_batch_size"].check(MAX_BATCH_SIZE) == MAX_BATCH_SIZE
    with pytest.raises(InvalidSetting, match=f"from 1 to {MAX_BATCH_SIZE} requests"):
        SPECS["engine.max_batch_size"].check(MAX_BATCH_SIZE + 1)
    with pytest.raises(InvalidRequest, match=f"1 to {MAX_BATCH_SIZE}"):
        BatchingSettings(max_batch_size=MAX_BATCH_SIZE + 1).validate()


def test_the_chat_reply_length_stops_where_the_setting_does(admin_window):
    assert admin_window.chat_panel.controls.max_new_tokens.maximum() == MAX_NEW_TOKENS == SPECS["engine.max_new_tokens"].check.high
