"""The model bar: which model, precision and device; load and unload with a progress bar and a status line."""

from __future__ import annotations

from typing import Callable, Collection

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from console.access.permissions import Permission
from console.units import format_parameters, format_size
from engine import LoadedModelInfo, ModelSpec
from engine.weights.devices import DEVICES, PRECISIONS, cuda_available

DEFAULT_ENTRY = "default"
SETTING_KEYS = ("engine.precision", "engine.device")  # the stored defaults this bar shows


class ModelBar(QWidget):
    load_requested = Signal(object)  # ModelSpec, or VersionLoadSpec for the registry's default version
    unload_requested = Signal()

    def __init__(self, default_model_label: str, default_spec_factory, parent: QWidget | None = None):
        super().__init__(parent)
        self._default_spec_factory = default_spec_factory
        self.setObjectName("modelBar")

        self.model_combo = QComboBox()
        self.model_combo.setMinimumWidth(280)
        self.model_combo.addItem(default_model_label, DEFAULT_ENTRY)
        self.model_combo.setToolTip("The model to load: the embedded default, or a GGUF file or Hugging Face folder")
        self.browse_file_button = QPushButton("GGUF file…")
        self.browse_folder_button = QPushButton("HF folder…")
        self.precision_combo = QComboBox()
        self.precision_combo.addItems(PRECISIONS)
        self.precision_combo.setToolTip("auto: bf16 on a recent GPU, fp32 on CPU")
        self.device_combo = QComboBox()
        self.device_combo.addItems(DEVICES)
        if not cuda_available():
            index = self.device_combo.findText("cuda")
            self.device_combo.model().item(index).setEnabled(False)
            self.device_combo.setItemData(index, "No NVIDIA GPU detected", Qt.ItemDataRole.ToolTipRole)
        self.load_button = QPushButton("Load")
        self.load_button.setObjectName("primaryButton")
        self.load_button.setShortcut("Ctrl+L")
        self.load_button.setToolTip("Load the selected model (Ctrl+L)")
        self.unload_button = QPushButton("Unload")
        self.unload_button.setEnabled(False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setVisible(False)
        self.progress.setTextVisible(True)
        self.status_label = QLabel("No model loaded — press Load to start the default model.")
        self.status_label.setObjectName("modelStatus")
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status_label.setWordWrap(True)
        self.estimate_label = QLabel("")
        self.estimate_label.setObjectName("modelEstimate")
        self.estimate_label.setToolTip("Memory the load needs (weights, KV cache, overhead, margin) and what is free")

        row = QHBoxLayout()
        row.addWidget(QLabel("Model"))
        row.addWidget(self.model_combo, 1)
        row.addWidget(self.browse_file_button)
        row.addWidget(self.browse_folder_button)
        row.addSpacing(12)
        row.addWidget(QLabel("Precision"))
        row.addWidget(self.precision_combo)
        row.addWidget(QLabel("Device"))
        row.addWidget(self.device_combo)
        row.addSpacing(12)
        row.addWidget(self.load_button)
        row.addWidget(self.unload_button)
        status_row = QHBoxLayout()
        status_row.addWidget(self.status_label, 1)
        status_row.addWidget(self.estimate_label)
        status_row.addWidget(self.progress)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 10, 12, 6)
        layout.addLayout(row)
        layout.addLayout(status_row)

        self.load_button.clicked.connect(self._request_load)
        self.unload_button.clicked.connect(self.unload_requested)
        self.browse_file_button.clicked.connect(self._browse_file)
        self.browse_folder_button.clicked.connect(self._browse_folder)

    def apply_settings(self, setting: Callable[[str], object], changed: Collection[str] | None = None) -> None:
        """The stored defaults of the next load: precision and device (all of them, or those in `changed`).
        A device this machine lacks (cuda without a GPU) stays unselected."""
        if changed is not None and not set(changed) & set(SETTING_KEYS):
            return
        self.precision_combo.setCurrentText(setting("engine.precision"))
        index = self.device_combo.findText(setting("engine.device"))
        if index >= 0 and self.device_combo.model().item(index).isEnabled():
            self.device_combo.setCurrentIndex(index)

    def apply_permissions(self, can: Callable[[str], bool], model_loaded: bool) -> None:
        """Load controls for those who may load (the core checks again)."""
        may_load = can(Permission.MODEL_LOAD)
        for widget in (self.load_button, self.browse_file_button, self.browse_folder_button):
            widget.setEnabled(may_load)
        self.unload_button.setEnabled(may_load and model_loaded)
        if not may_load and not model_loaded:
            self.status_label.setText("No model loaded — ask an operator to load one.")

    def selected_spec(self) -> ModelSpec:
        precision, device = self.precision_combo.currentText(), self.device_combo.currentText()
        data = self.model_combo.currentData()
        if data == DEFAULT_ENTRY:
            return self._default_spec_factory(precision, device)
        return ModelSpec(str(data), precision=precision, device=device)

    def show_estimate(self, text: str, fits: bool, detail: str = "") -> None:
        """"Needs about X of Y free" before Load; in the error colour when it will not fit."""
        self.estimate_label.setText(text)
        self.estimate_label.setToolTip(detail or self.estimate_label.toolTip())
        self.estimate_label.setProperty("state", "" if fits else "error")
        self.estimate_label.style().unpolish(self.estimate_label)
        self.estimate_label.style().polish(self.estimate_label)

    def set_default_label(self, label: str) -> None:
        """Name what the default entry loads (the registry's default version, once there is one)."""
        self.model_combo.setItemText(self.model_combo.findData(DEFAULT_ENTRY), label)

    def add_model_path(self, path: str) -> None:
        index = self.model_combo.findData(path)
        if index < 0:
            self.model_combo.addItem(path, path)
            index = self.model_combo.count() - 1
        self.model_combo.setCurrentIndex(index)

    def _browse_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a GGUF model file", "", "GGUF models (*.gguf);;All files (*)")
        if path:
            self.add_model_path(path)

    def _browse_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Choose a Hugging Face model folder")
        if path:
            self.add_model_path(path)

    def _request_load(self) -> None:
        try:
            spec = self.selected_spec()
        except Exception as error:  # the default model may be missing
            self.show_error(str(error))
            return
        self.load_requested.emit(spec)

    # --- state shown -----------------------------------------------------------------------------------
    def show_loading(self, name: str) -> None:
        self._set_controls_enabled(False)
        self.unload_button.setEnabled(False)
        self.progress.setVisible(True)
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self._set_status(f"Loading {name}…", "")

    def show_progress(self, fraction: float, message: str) -> None:
        if fraction < 0:
            self.progress.setRange(0, 0)  # busy indicator: the step has no measurable progress
        else:
            self.progress.setRange(0, 100)
            self.progress.setValue(int(fraction * 100))
        self._set_status(message, "")

    def show_loaded(self, info: LoadedModelInfo) -> None:
        self._set_controls_enabled(True)
        self.unload_button.setEnabled(True)
        self.progress.setVisible(False)
        # `auto` names what it chose on the line and says why in the tooltip: the reason is a sentence, and on
        # the line it wrapped the status to two lines.
        precision = f"{info.precision} (auto)" if info.precision_reason else info.precision
        self._set_status(
            f"● {info.name} · {info.architecture} · {format_parameters(info.parameters)} parameters · "
            f"{precision} · {info.device} · weights {format_size(info.weight_bytes)} · "
            f"context {info.context_length:,} · loaded in {info.load_seconds:.1f} s",
            "ok",
            tip=f"Precision auto chose {info.precision}: {info.precision_reason}" if info.precision_reason else "",
        )

    def show_unloaded(self) -> None:
        self._set_controls_enabled(True)
        self.unload_button.setEnabled(False)
        self.progress.setVisible(False)
        self._set_status("No model loaded — press Load to start the selected model.", "")

    def show_error(self, message: str, model_still_loaded: bool = False) -> None:
        self._set_controls_enabled(True)
        self.unload_button.setEnabled(model_still_loaded)
        self.progress.setVisible(False)
        self._set_status(f"⚠ {message}", "error")

    def _set_controls_enabled(self, enabled: bool) -> None:
        for widget in (self.model_combo, self.browse_file_button, self.browse_folder_button, self.precision_combo,
                       self.device_combo, self.load_button):
            widget.setEnabled(enabled)

    def _set_status(self, text: str, state: str, tip: str = "") -> None:
        self.status_label.setText(text)
        self.status_label.setToolTip(tip)
        self.status_label.setProperty("state", state)
        self.status_label.style().unpolish(self.status_label)
        self.status_label.style().polish(self.status_label)
