"""The main window: the model bar on top, one tab per panel below, a status bar."""

from __future__ import annotations

from PySide6.QtGui import QCloseEvent, QIcon
from PySide6.QtWidgets import QLabel, QMainWindow, QTabWidget, QVBoxLayout, QWidget

from console.default_model import DEFAULT_MODEL_NAME
from engine import LoadedModelInfo, ModelSpec
from resources import resource_path
from ui.chat_panel import ChatPanel
from ui.engine_adapter import EngineAdapter
from ui.engine_panel import EnginePanel
from ui.model_bar import ModelBar


class MainWindow(QMainWindow):
    def __init__(self, adapter: EngineAdapter):
        super().__init__()
        self.adapter = adapter
        self.setWindowTitle("LLM Console")
        self.setWindowIcon(QIcon(str(resource_path("icon.svg"))))
        self.resize(1180, 760)

        self.model_bar = ModelBar(f"{DEFAULT_MODEL_NAME} (embedded default)", adapter.core.default_model_spec)
        self.chat_panel = ChatPanel(adapter)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.chat_panel, "Chat")
        self.engine_panel = EnginePanel(adapter)
        self.tabs.addTab(self.engine_panel, "Engine")
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.model_bar)
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self.engine_status = QLabel("No model loaded")
        self.statusBar().addPermanentWidget(self.engine_status)

        self.model_bar.load_requested.connect(self._load)
        self.model_bar.unload_requested.connect(self._unload)
        adapter.load_started.connect(self.model_bar.show_loading)
        adapter.load_progress.connect(self.model_bar.show_progress)
        adapter.load_finished.connect(self._loaded)
        adapter.load_failed.connect(self._load_failed)
        adapter.generation_finished.connect(self._generation_finished)
        self._shut_down = False

    def _load(self, spec: ModelSpec) -> None:
        self.adapter.load(spec)

    def _unload(self) -> None:
        self.adapter.unload()
        self.model_bar.show_unloaded()
        self.engine_status.setText("No model loaded")

    def _loaded(self, info: LoadedModelInfo) -> None:
        self.model_bar.show_loaded(info)
        self.engine_status.setText(f"{info.name} ready on {info.device}")
        self.statusBar().showMessage(f"Loaded {info.name} in {info.load_seconds:.1f} s", 5000)
        self.chat_panel.input.setFocus()

    def _load_failed(self, message: str) -> None:
        self.model_bar.show_error(message, model_still_loaded=self.adapter.model_info is not None)
        self.statusBar().showMessage("Load failed", 5000)

    def _generation_finished(self, _request_id: int, result) -> None:
        if result.tokens_per_second:
            self.statusBar().showMessage(f"Last reply: {result.tokens_per_second:.1f} tok/s", 5000)

    def shutdown(self) -> None:
        """Stop generation and the engine thread; safe to call twice."""
        if not self._shut_down:
            self._shut_down = True
            self.adapter.shutdown()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.shutdown()
        super().closeEvent(event)
