"""The dialog that names an import: a new model, or a new version of an existing one, and notes."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from console.registry.service import RegistryService
from ui.access.desktop_session import DesktopSession


class ImportDialog(QDialog):
    def __init__(self, registry: RegistryService, session: DesktopSession, path: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.registry = registry
        self.session = session
        self.path = path
        self.setWindowTitle("Import a model")
        self.setMinimumWidth(520)
        source = Path(path)
        default_name = source.name.removesuffix(".gguf") if source.suffix.lower() == ".gguf" else source.name

        self.name = QComboBox()
        self.name.setEditable(True)
        self.name.addItems(registry.model_names(session.principal))
        self.name.setEditText(default_name)
        self.name.setToolTip("A new name registers a new model; an existing name adds a version to it")
        self.version = QLineEdit()
        self.version.setPlaceholderText("for example v2, 2024-06, int8-calibrated")
        self.notes = QPlainTextEdit()
        self.notes.setPlaceholderText("Where it came from, why it is deployed (optional)")
        self.notes.setFixedHeight(70)
        path_label = QLabel(path)
        path_label.setWordWrap(True)
        path_label.setObjectName("importPath")
        hint = QLabel("Every file is hashed (SHA-256) before anything is registered; you can cancel while it runs.")
        hint.setWordWrap(True)
        hint.setObjectName("dialogHint")

        form = QFormLayout()
        form.addRow("Files", path_label)
        form.addRow("Model name", self.name)
        form.addRow("Version", self.version)
        form.addRow("Notes", self.notes)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Import")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(hint)
        layout.addWidget(self.buttons)

        self.name.currentTextChanged.connect(self._suggest_version)
        self._suggest_version(default_name)

    def _suggest_version(self, name: str) -> None:
        self.version.setText(self.registry.next_label(self.session.principal, name) if name.strip() else "v1")

    def values(self) -> tuple[str, str, str]:
        """(model name, version label, notes) as typed."""
        return self.name.currentText().strip(), self.version.text().strip(), self.notes.toPlainText().strip()
