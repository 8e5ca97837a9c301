"""The Models tab driven through pytest-qt: import with progress and cancel, verify, load, default, retire,
checksums to the clipboard, manifests, the schedule, and the embedded model registered on first start."""

from __future__ import annotations

import datetime
import json

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QMessageBox

from console.registry.default_model import DEFAULT_MODEL_NAME
from ui.app import build_main_window
from ui.models.import_dialog import ImportDialog
from tests.registry_helpers import flip_byte, make_hf_folder, open_registry, skip_embedded_registration
from tests.access_helpers import admin_core

COLUMN = {name: index for index, name in enumerate(("Model", "Version", "Format", "Size", "Precision", "Parameters",
                                                    "Verified", "Registered"))}


@pytest.fixture
def window(qtbot, tmp_path):
    core, admin = admin_core(tmp_path / "data")
    registry = open_registry(tmp_path / "data" / "registry.db")
    skip_embedded_registration(registry)
    registry.database.close()
    main_window = build_main_window(core, admin)
    qtbot.addWidget(main_window)
    main_window.show()
    main_window.tabs.setCurrentWidget(main_window.models_panel)
    yield main_window
    main_window.shutdown()


@pytest.fixture
def panel(window):
    return window.models_panel


def import_and_wait(qtbot, panel, path, **names) -> None:
    with qtbot.waitSignal(panel.jobs.job_finished, timeout=60_000):
        assert panel.start_import(str(path), **names)


def cell(panel, row: int, column: str) -> str:
    return panel.table.item(row, COLUMN[column]).text()


def test_an_empty_registry_says_how_to_start(panel):
    assert panel.empty_hint.isVisible()
    assert "import a Hugging Face folder or a GGUF file" in panel.empty_hint.text()
    assert not panel.load_button.isEnabled() and not panel.verify_button.isEnabled()


def test_an_import_shows_the_version_with_its_figures(qtbot, panel, tiny_model_dir):
    import_and_wait(qtbot, panel, tiny_model_dir, name="tiny", version="v1", notes="from the lab")
    assert panel.table.rowCount() == 1 and not panel.empty_hint.isVisible()
    assert (cell(panel, 0, "Model"), cell(panel, 0, "Version"), cell(panel, 0, "Format")) == ("tiny", "v1", "hf")
    assert cell(panel, 0, "Precision") == "fp32" and cell(panel, 0, "Parameters").endswith("K")
    assert cell(panel, 0, "Size").endswith("KB")
    assert cell(panel, 0, "Verified").startswith("✓ verified · ") and cell(panel, 0, "Verified").endswith("(full)")
    assert " by " in cell(panel, 0, "Registered")
    assert panel.notice.text().startswith("✓ Registered tiny:v1: 6 files")
    assert not panel.progress_box.isVisible()
    assert panel.details.files_table.rowCount() == 6
    assert panel.details.notes.text() == "from the lab"


def test_hashing_shows_progress_with_bytes_per_second(qtbot, panel, tmp_path):
    big = make_hf_folder(tmp_path / "big", weight_bytes=256 * 1024 * 1024)
    seen = []
    panel.jobs.job_progress.connect(lambda _step: seen.append((panel.progress_box.isVisible(), panel.progress_label.text())))
    import_and_wait(qtbot, panel, big, name="big")
    assert all(visible for visible, _ in seen)
    assert any("MB of 256.0 MB" in text and text.endswith("/s") for _, text in seen)
    assert panel.progress.value() > 0


def test_cancel_stops_the_import_and_registers_nothing(qtbot, panel, tmp_path):
    huge = make_hf_folder(tmp_path / "huge", weight_bytes=4 * 1024**3)  # sparse: 4 GB that take no disk
    with qtbot.waitSignal(panel.jobs.job_cancelled, timeout=60_000):
        panel.start_import(str(huge), name="huge")
        assert panel.cancel_button.isVisible()
        qtbot.mouseClick(panel.cancel_button, Qt.MouseButton.LeftButton)
    assert panel.notice.text() == "Import cancelled: nothing was registered."
    assert panel.registry.versions(panel.session.principal) == [] and panel.table.rowCount() == 0
    assert not panel.progress_box.isVisible() and panel.import_folder_button.isEnabled()


def test_verify_now_flags_a_tampered_file_with_both_hashes(qtbot, panel, tiny_model_copy):
    import_and_wait(qtbot, panel, tiny_model_copy, name="tiny")
    expected = {f.path: f.sha256 for f in panel.registry.files(panel.session.principal, 1)}["model.safetensors"]
    flip_byte(tiny_model_copy / "model.safetensors")
    panel.select_version(1)
    with qtbot.waitSignal(panel.jobs.job_finished, timeout=60_000):
        qtbot.mouseClick(panel.verify_button, Qt.MouseButton.LeftButton)
    assert panel.notice.text().startswith("⚠ tiny:v1 failed verification: model.safetensors changed: expected SHA-256 " + expected)
    assert cell(panel, 0, "Verified").startswith("⚠ tampered")
    assert panel.details.checks_table.item(0, 2).text() == "MISMATCH"


def test_load_verifies_loads_and_records_the_load(qtbot, window, panel, tiny_model_dir):
    import_and_wait(qtbot, panel, tiny_model_dir, name="tiny")
    window.model_bar.precision_combo.setCurrentText("fp32")
    window.model_bar.device_combo.setCurrentText("cpu")
    panel.select_version(1)
    with qtbot.waitSignal(window.adapter.load_finished, timeout=60_000) as loaded:
        qtbot.mouseClick(panel.load_button, Qt.MouseButton.LeftButton)
    assert loaded.args[0].name == "tiny:v1"
    assert "tiny:v1" in window.model_bar.status_label.text()
    qtbot.waitUntil(lambda: panel.details.history_table.rowCount() == 1, timeout=5_000)
    assert panel.details.history_table.item(0, 1).text() == "loaded"
    assert panel.details.history_table.item(0, 2).text() == "fp32"


def test_a_tampered_version_is_refused_in_the_window(qtbot, window, panel, tiny_model_copy):
    import_and_wait(qtbot, panel, tiny_model_copy, name="tiny")
    flip_byte(tiny_model_copy / "tokenizer.json")
    panel.select_version(1)
    with qtbot.waitSignal(window.adapter.load_failed, timeout=60_000) as failed:
        qtbot.mouseClick(panel.load_button, Qt.MouseButton.LeftButton)
    assert "tiny:v1 failed verification and was not loaded: tokenizer.json changed: expected SHA-256" in failed.args[0]
    assert "tokenizer.json changed" in window.model_bar.status_label.text()
    qtbot.waitUntil(lambda: panel.details.history_table.rowCount() == 1, timeout=5_000)
    assert panel.details.history_table.item(0, 1).text() == "refused"
    assert cell(panel, 0, "Verified").startswith("⚠ tampered")


def test_checksums_copy_with_one_click(qtbot, panel, tiny_model_dir):
    import_and_wait(qtbot, panel, tiny_model_dir, name="tiny")
    version = panel.registry.version(panel.session.principal, 1)
    qtbot.mouseClick(panel.details.copy_checksum_button, Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == version.checksum
    first_file = panel.registry.files(panel.session.principal, 1)[0]
    qtbot.mouseClick(panel.details.files_table.cellWidget(0, 3), Qt.MouseButton.LeftButton)
    assert QGuiApplication.clipboard().text() == first_file.sha256
    assert panel.notice.text() == f"✓ Copied the SHA-256 of {first_file.path} to the clipboard."


def test_set_as_default_makes_the_model_bar_load_it_verified(qtbot, window, panel, tiny_model_dir):
    import_and_wait(qtbot, panel, tiny_model_dir, name="tiny")
    panel.select_version(1)
    qtbot.mouseClick(panel.default_button, Qt.MouseButton.LeftButton)
    assert "★ default" in cell(panel, 0, "Model")
    assert window.model_bar.model_combo.itemText(0) == "tiny:v1 (default, verified before loading)"
    window.model_bar.model_combo.setCurrentIndex(0)
    window.model_bar.precision_combo.setCurrentText("fp32")
    with qtbot.waitSignal(window.adapter.load_finished, timeout=60_000) as loaded:
        qtbot.mouseClick(window.model_bar.load_button, Qt.MouseButton.LeftButton)
    assert loaded.args[0].name == "tiny:v1"
    assert panel.registry.load_history(panel.session.principal, 1)[0].outcome == "loaded"


def test_retire_asks_first_then_keeps_the_version_on_record(qtbot, panel, tiny_model_dir, monkeypatch):
    import_and_wait(qtbot, panel, tiny_model_dir, name="tiny")
    panel.select_version(1)
    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kwargs: QMessageBox.StandardButton.No)
    qtbot.mouseClick(panel.retire_button, Qt.MouseButton.LeftButton)
    assert not panel.registry.version(panel.session.principal, 1).retired
    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kwargs: QMessageBox.StandardButton.Yes)
    qtbot.mouseClick(panel.retire_button, Qt.MouseButton.LeftButton)
    assert cell(panel, 0, "Verified").startswith("retired ")
    assert not panel.load_button.isEnabled() and not panel.retire_button.isEnabled()
    assert panel.verify_button.isEnabled()  # a retired version can still be proven intact


def test_the_schedule_is_saved_and_due_versions_are_rehashed(qtbot, panel, tiny_model_dir):
    import_and_wait(qtbot, panel, tiny_model_dir, name="tiny")
    panel.schedule.setValue(2)
    assert panel.registry.verify_interval_hours(panel.session.principal) == 2
    assert not panel.run_scheduled_verification()  # just registered: nothing due
    later = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=3)
    with qtbot.waitSignal(panel.jobs.job_finished, timeout=60_000) as finished:
        assert panel.run_scheduled_verification(now=later)
    assert [report.kind for report in finished.args[1]] == ["full"]
    assert panel.notice.text() == "✓ tiny:v1: all 6 files match their SHA-256."


def test_export_then_check_a_manifest(qtbot, panel, tiny_model_dir, tmp_path):
    import_and_wait(qtbot, panel, tiny_model_dir, name="tiny")
    panel.select_version(1)
    destination = tmp_path / "tiny.json"
    panel.export_manifest_to(str(destination))
    assert json.loads(destination.read_text())["checksum"] == panel.registry.version(panel.session.principal, 1).checksum
    with qtbot.waitSignal(panel.jobs.job_finished, timeout=60_000):
        assert panel.check_manifest_file(str(destination))
    assert panel.notice.text().startswith(f"✓ {tiny_model_dir} matches the manifest of tiny:v1")
    assert "(registered here as tiny:v1)" in panel.notice.text()


def test_the_import_dialog_suggests_the_next_version_of_an_existing_model(qtbot, panel, tiny_model_dir):
    import_and_wait(qtbot, panel, tiny_model_dir, name="tiny")
    dialog = ImportDialog(panel.registry, panel.session, "/models/tiny-retrained", panel)
    qtbot.addWidget(dialog)
    assert dialog.name.currentText() == "tiny-retrained" and dialog.version.text() == "v1"
    dialog.name.setEditText("tiny")
    assert dialog.version.text() == "v2"
    qtbot.keyClicks(dialog.notes, "second run")
    assert dialog.values() == ("tiny", "v2", "second run")


def test_closing_the_window_during_an_import_cancels_it(qtbot, window, panel, tmp_path):
    huge = make_hf_folder(tmp_path / "huge", weight_bytes=4 * 1024**3)
    panel.start_import(str(huge), name="huge")
    worker = panel.jobs._worker
    window.close()
    assert not worker.is_alive()
    registry = open_registry(tmp_path / "data" / "registry.db")
    assert registry.versions() == []
    registry.database.close()


def test_first_start_registers_the_embedded_model_as_the_default(qtbot, tmp_path):
    main_window = build_main_window(*admin_core(tmp_path / "fresh"))
    qtbot.addWidget(main_window)
    panel = main_window.models_panel
    try:
        with qtbot.waitSignal(panel.jobs.job_finished, timeout=120_000):
            assert panel.register_embedded_default()
        assert cell(panel, 0, "Model") == f"{DEFAULT_MODEL_NAME}  ★ default"
        assert (cell(panel, 0, "Format"), cell(panel, 0, "Precision"), cell(panel, 0, "Parameters")) == ("gguf", "Q4_1", "135M")
        assert main_window.model_bar.model_combo.itemText(0).startswith(f"{DEFAULT_MODEL_NAME}:")
        assert not panel.register_embedded_default()  # only once
    finally:
        main_window.shutdown()
