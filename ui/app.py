"""Start the GUI: the QApplication, the style sheet, the core and the main window."""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QApplication, QDialog, QMessageBox

from console.core import ConsoleCore
from console.errors import ConsoleError
from resources import resource_path
from ui.access.account_dialogs import FirstAdminDialog, SignInDialog
from ui.access.desktop_session import DesktopSession
from ui.adapters.engine_adapter import EngineAdapter
from ui.main_window import MainWindow


def apply_style(app: QApplication) -> None:
    app.setApplicationName("LLM Console")
    app.setOrganizationName("LLM Console")
    app.setStyle("Fusion")
    app.setStyleSheet(resource_path("style.qss").read_text(encoding="utf-8"))


def build_main_window(core: ConsoleCore, principal) -> MainWindow:
    """The window for the signed-in `principal` (it keeps its own desktop session from then on)."""
    return MainWindow(EngineAdapter(core, DesktopSession(core, principal)))


def run_app() -> int:
    app = QApplication.instance() or QApplication(sys.argv)
    apply_style(app)
    try:
        core = ConsoleCore()
    except ConsoleError as error:  # the database is locked, damaged, or from a newer version
        QMessageBox.critical(None, "LLM Console cannot start", str(error))
        return 1
    # There is no default account: the first start creates the administrator, later starts sign in.
    session = DesktopSession(core)
    dialog = FirstAdminDialog(session) if core.access.needs_first_admin() else SignInDialog(session)
    if dialog.exec() != QDialog.DialogCode.Accepted:
        core.shutdown()
        return 0
    window = MainWindow(EngineAdapter(core, session))
    window.show()
    app.aboutToQuit.connect(window.shutdown)
    window.models_panel.register_embedded_default()  # first start only: hashes the embedded model in the background
    return app.exec()
