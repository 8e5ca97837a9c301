"""The main window: the model bar on top, one tab per panel below, a status bar."""

from __future__ import annotations

from PySide6.QtGui import QCloseEvent, QIcon
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from console.access.permissions import Permission
from console.registry.default_model import DEFAULT_MODEL_NAME
from console.errors import ConsoleError
from console.lab.load_memory import describe_estimate
from console.units import format_size
from console.registry.verified_loading import VersionLoadSpec
from engine import EngineError, LoadedModelInfo, ModelSpec
from resources import resource_path
from ui.access.account_dialogs import ChangePasswordDialog, SignInDialog
from ui.telemetry.alert_status import AlertStatus
from ui.access.audit_view import AuditView
from ui.adapters.api_adapter import ApiAdapter
from ui.api.api_panel import ApiPanel
from ui.chat.chat_panel import ChatPanel
from ui.adapters.engine_adapter import EngineAdapter
from ui.adapters.lab_adapter import LabAdapter
from ui.lab.lab_panel import LabPanel
from ui.engine.engine_panel import EnginePanel
from ui.models.model_bar import ModelBar
from ui.models.models_panel import ModelsPanel
from ui.adapters.registry_adapter import RegistryAdapter
from ui.access.session_lock import IdleLock
from ui.settings.settings_view import SettingsView
from ui.adapters.telemetry_adapter import TelemetryAdapter
from ui.telemetry.telemetry_panel import TelemetryPanel


class MainWindow(QMainWindow):
    def __init__(self, adapter: EngineAdapter, telemetry: TelemetryAdapter | None = None):
        super().__init__()
        self.adapter = adapter
        self.setWindowTitle("LLM Console")
        self.setWindowIcon(QIcon(str(resource_path("icon.svg"))))
        self.resize(1180, 760)

        self.model_bar = ModelBar(f"{DEFAULT_MODEL_NAME} (embedded default)", adapter.core.default_load_target)
        self.chat_panel = ChatPanel(adapter)
        self.tabs = QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.chat_panel, "Chat")
        self.engine_panel = EnginePanel(adapter)
        self.tabs.addTab(self.engine_panel, "Engine")
        self.session = adapter.session
        self.models_panel = ModelsPanel(RegistryAdapter(adapter.core.registry, adapter.session, self,
                                                         register_default_with=adapter.core.ensure_default_registered))
        self.tabs.addTab(self.models_panel, "Models")
        self.telemetry = telemetry or TelemetryAdapter.for_core(adapter.core, lambda: adapter.session.principal, self)  # samples from now on
        self.telemetry_panel = TelemetryPanel(self.telemetry)
        self.tabs.addTab(self.telemetry_panel, "Telemetry")
        self.settings_view = SettingsView(adapter.session)
        self.tabs.addTab(self.settings_view, "Settings")
        self.audit_view = AuditView(adapter.session)
        self.tabs.addTab(self.audit_view, "Audit")
        self.api_panel = ApiPanel(ApiAdapter(adapter.core.api, lambda: adapter.session.principal, self), adapter.core)
        self.tabs.addTab(self.api_panel, "API")
        self.lab_adapter = LabAdapter(adapter.core, adapter.session, self)
        self.lab_panel = LabPanel(self.lab_adapter, self._lab_target)
        self.tabs.insertTab(self.tabs.indexOf(self.telemetry_panel), self.lab_panel, "Lab")
        self.memory_prompt: QMessageBox | None = None  # "load anyway?" after a load the estimate refused
        workspace = QWidget()
        layout = QVBoxLayout(workspace)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.model_bar)
        layout.addWidget(self.tabs, 1)
        self.lock_page = QWidget()
        lock_layout = QVBoxLayout(self.lock_page)
        self.lock_message = QLabel("")
        self.lock_message.setObjectName("emptyHint")
        self.unlock_button = QPushButton("Unlock…")
        self.unlock_button.setObjectName("primaryButton")
        lock_layout.addStretch(1)
        lock_layout.addWidget(self.lock_message)
        lock_layout.addWidget(self.unlock_button)
        lock_layout.addStretch(1)
        self.pages = QStackedWidget()
        self.pages.addWidget(workspace)
        self.pages.addWidget(self.lock_page)
        self.setCentralWidget(self.pages)
        self._build_account_menu()
        self.idle_lock = IdleLock(adapter.core.settings.get("security.idle_lock_minutes"), parent=self)
        self.winId()  # the native window now, so that the idle lock watches it from the start
        self.idle_lock.watch(QApplication.instance())
        self.idle_lock.locked.connect(self.lock_session)
        self.unlock_button.clicked.connect(self.unlock)
        self.engine_status = QLabel("No model loaded")
        self.statusBar().addPermanentWidget(self.engine_status)
        self.alert_status = AlertStatus(self.telemetry)
        self.alert_status.clicked.connect(lambda: self.tabs.setCurrentWidget(self.telemetry_panel))
        self.statusBar().addPermanentWidget(self.alert_status)

        self.model_bar.load_requested.connect(self._load)
        self.model_bar.unload_requested.connect(self._unload)
        adapter.load_started.connect(self.model_bar.show_loading)
        adapter.load_progress.connect(self.model_bar.show_progress)
        adapter.load_finished.connect(self._loaded)
        adapter.load_failed.connect(self._load_failed)
        adapter.generation_finished.connect(self._generation_finished)
        self.models_panel.load_requested.connect(self._load_version)
        self.models_panel.default_changed.connect(self._default_changed)
        adapter.load_finished.connect(self.models_panel.refresh)  # load history and verified state
        adapter.load_refused_for_memory.connect(self._offer_load_anyway)
        adapter.estimate_ready.connect(self._show_estimate)
        adapter.load_finished.connect(lambda _info: self.update_estimate())
        for combo in (self.model_bar.model_combo, self.model_bar.precision_combo, self.model_bar.device_combo):
            combo.currentIndexChanged.connect(lambda _index: self.update_estimate())
        self.lab_panel.applied.connect(self._lab_applied)
        adapter.load_failed.connect(self.models_panel.refresh)
        if self.session.can(Permission.REGISTRY_VIEW):
            self._default_changed(adapter.core.registry.default_version(self.session.principal))
        self.session_label = QLabel("")
        self.session_label.setObjectName("sessionLabel")
        self.statusBar().addPermanentWidget(self.session_label)
        self._shut_down = False
        self._locked_user: str | None = None
        self._apply_stored_defaults()
        self.settings_view.changed.connect(self._settings_saved)
        self.apply_session()
        self.api_panel.start_if_enabled()  # the API was on when the window last closed
        self.update_estimate()

    def _apply_stored_defaults(self, changed: dict | None = None) -> None:
        """The stored defaults, to the panels that show them: precision and device of the next load, reply length."""
        setting = self.adapter.core.settings.get
        self.model_bar.apply_settings(setting, changed)
        self.chat_panel.apply_settings(setting, changed)

    def _settings_saved(self, changed: dict) -> None:
        """Saved settings apply at once: load defaults and reply length, the idle lock, and the batching knobs
        (the engine panel follows). The compile setting applies at the next load, read then."""
        self._apply_stored_defaults(changed)
        if "security.idle_lock_minutes" in changed:
            self.idle_lock.set_minutes(changed["security.idle_lock_minutes"])
        try:
            self.engine_panel.apply_saved_settings(changed)
        except (EngineError, ConsoleError) as error:
            self.statusBar().showMessage(f"Saved, but not applied to the running engine: {error}", 8000)

    # --- memory estimate and the lab ---------------------------------------------------------------------
    def update_estimate(self) -> None:
        """Ask for the memory estimate of what Load would load now (answered in `_show_estimate`)."""
        try:
            spec = self.model_bar.selected_spec()
        except (EngineError, ConsoleError):
            self.model_bar.show_estimate("", True)
            return
        self._estimated_spec = spec
        self.adapter.estimate(spec)

    def _show_estimate(self, spec, estimate) -> None:
        if spec != getattr(self, "_estimated_spec", None):
            return  # the selection changed since
        if estimate is None:
            self.model_bar.show_estimate("", True)
            return
        free = f" of {format_size(estimate.free_bytes)} free" if estimate.free_bytes is not None else ""
        self.model_bar.show_estimate(f"needs about {format_size(estimate.total_bytes)}{free}", estimate.fits,
                                     describe_estimate(estimate))

    def _offer_load_anyway(self, spec, message: str) -> None:
        self.model_bar.show_error(message, model_still_loaded=self.adapter.model_info is not None)
        prompt = QMessageBox(QMessageBox.Icon.Warning, "The model will not fit", message, parent=self)
        self.load_anyway_button = prompt.addButton("Load anyway", QMessageBox.ButtonRole.AcceptRole)
        prompt.addButton(QMessageBox.StandardButton.Cancel)
        self.load_anyway_button.clicked.connect(lambda: self.adapter.load(spec, load_anyway=True))
        self.memory_prompt = prompt
        prompt.open()

    def _lab_target(self):
        return self.model_bar.selected_spec(), self.model_bar.device_combo.currentText()

    def _lab_applied(self, outcome) -> None:
        """The knobs are set; the model bar takes the recommended precision, and the sweep's model, if it is
        the one loaded, reloads at it."""
        self.engine_panel.show_engine_knobs()
        self.model_bar.precision_combo.setCurrentText(outcome.recommendation.precision)
        if outcome.reload_target is not None and self.session.can(Permission.MODEL_LOAD):
            self.adapter.load(outcome.reload_target)

    # --- accounts ----------------------------------------------------------------------------------------
    def _build_account_menu(self) -> None:
        menu = self.menuBar().addMenu("&Account")
        self.switch_user_action = QAction("Switch user…", self, triggered=self.switch_user)
        self.change_password_action = QAction("Change password…", self, triggered=self.change_password)
        self.lock_action = QAction("Lock now", self, shortcut=QKeySequence("Ctrl+Shift+L"), triggered=self.lock_session)
        self.quit_action = QAction("Quit", self, shortcut=QKeySequence("Ctrl+Q"), triggered=self.close)
        for action in (self.switch_user_action, self.change_password_action, self.lock_action):
            menu.addAction(action)
        menu.addSeparator()
        menu.addAction(self.quit_action)

    def switch_user(self, dialog: SignInDialog | None = None) -> bool:
        """Sign in as someone else; the current session stays if the dialog is cancelled.
        (A dialog passed in that was already accepted is used as it is: tests drive it without exec().)"""
        previous = self.session.principal
        dialog = dialog or SignInDialog(self.session, parent=self)
        if dialog.result() != QDialog.DialogCode.Accepted and dialog.exec() != QDialog.DialogCode.Accepted:
            return False
        if previous is not None and previous.user != self.session.user:
            self.adapter.core.sign_out(previous, "switch user")
        self.apply_session()
        return True

    def change_password(self) -> None:
        ChangePasswordDialog(self.session, self).exec()

    def lock_session(self) -> None:
        """Hide the workspace and end the session; generation and sampling go on. Unlocking signs in again."""
        if self.pages.currentWidget() is self.lock_page:
            return
        self._locked_user = self.session.user
        self.session.sign_out("locked")
        self.lock_message.setText(f"Locked. {self._locked_user or 'Someone'} must sign in again to continue.")
        self.pages.setCurrentWidget(self.lock_page)
        self.menuBar().setEnabled(False)
        self.apply_session()

    def unlock(self, dialog: SignInDialog | None = None) -> bool:
        dialog = dialog or SignInDialog(self.session, locked_user=self._locked_user, parent=self)
        if dialog.result() != QDialog.DialogCode.Accepted and dialog.exec() != QDialog.DialogCode.Accepted:
            return False
        self.pages.setCurrentIndex(0)
        self.menuBar().setEnabled(True)
        self.idle_lock.resume()
        self.apply_session()
        return True

    def apply_session(self) -> None:
        """Each panel shows and enables what the signed-in user may do (convenience only: the services check
        again); the window shows the tabs the user may see."""
        principal = self.session.principal
        can = self.session.can
        self.chat_panel.apply_session()  # first: another user's new chat re-enables Send
        self.session_label.setText(f"Signed in as {principal.user} ({principal.role})" if principal else "Not signed in")
        self.model_bar.apply_permissions(can, model_loaded=self.adapter.model_info is not None)
        self.engine_panel.apply_permissions(can)
        self.models_panel.apply_permissions(can)
        for panel, any_of in ((self.models_panel, (Permission.REGISTRY_VIEW,)),
                              (self.telemetry_panel, (Permission.METRICS_VIEW,)),
                              (self.engine_panel, (Permission.METRICS_VIEW, Permission.ENGINE_CONFIGURE)),
                              (self.settings_view, (Permission.SETTINGS_VIEW,)),
                              (self.audit_view, (Permission.AUDIT_VIEW,))):
            self.tabs.setTabVisible(self.tabs.indexOf(panel), any(can(permission) for permission in any_of))
        self.tabs.setTabVisible(self.tabs.indexOf(self.chat_panel), True)
        self.tabs.setTabVisible(self.tabs.indexOf(self.api_panel),
                                can(Permission.SETTINGS_EDIT) or can(Permission.USERS_MANAGE))
        self.tabs.setTabVisible(self.tabs.indexOf(self.lab_panel), can(Permission.METRICS_VIEW) or can(Permission.BENCH_RUN))
        self.lab_panel.run_button.setVisible(can(Permission.BENCH_RUN))
        if principal is not None:
            self.lab_panel.refresh()
            self.settings_view.refresh_for_session()
            self.audit_view.refresh_for_session()
            self.api_panel.refresh()
            self.idle_lock.set_minutes(self.adapter.core.settings.get("security.idle_lock_minutes"))

    def _load(self, spec: ModelSpec) -> None:
        self.adapter.load(spec)

    def _load_version(self, version_id: int) -> None:
        precision, device = self.model_bar.precision_combo.currentText(), self.model_bar.device_combo.currentText()
        self.adapter.load(VersionLoadSpec(version_id, precision, device))

    def _default_changed(self, version) -> None:
        self.model_bar.set_default_label(
            f"{version.ref} (default, verified before loading)" if version else f"{DEFAULT_MODEL_NAME} (embedded default)"
        )

    def _unload(self) -> None:
        try:
            self.adapter.unload()
        except ConsoleError as error:
            self.model_bar.show_error(str(error), model_still_loaded=True)
            return
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
            self.idle_lock.unwatch(QApplication.instance())
            self.models_panel.shutdown()  # its hashing thread uses the database the core closes
            self.api_panel.shutdown()  # running API requests may finish first
            self.lab_adapter.shutdown()  # a sweep stops after its current repetition
            self.engine_panel.timer.stop()  # its refresh asks the core, whose database closes below
            self.audit_view.follow_timer.stop()
            self.telemetry.shutdown()
            self.adapter.shutdown()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.hide()  # shutting down may wait for a background compile to finish (seconds)
        self.shutdown()
        super().closeEvent(event)
