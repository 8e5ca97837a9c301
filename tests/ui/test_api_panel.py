"""The API tab on the real window: start and stop the server, the base URL and examples, the plain warning
beyond loopback, keys (the secret shown once, revoke) and live per-key usage."""

from __future__ import annotations

import socket

import httpx
import pytest

from engine import ModelSpec
from ui.api.api_panel import CreateKeyDialog, SecretDialog


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def api_tab(admin_window, qtbot, tiny_model_dir):
    window = admin_window
    core, principal = window.adapter.core, window.session.principal
    core.load_model(principal, ModelSpec(str(tiny_model_dir), precision="fp32", device="cpu"))
    window.tabs.setCurrentWidget(window.api_panel)
    window.api_panel.port.setValue(free_port())
    return window.api_panel


def start(panel, qtbot) -> str:
    with qtbot.waitSignal(panel.adapter.started, timeout=30_000) as started:
        panel.toggle.click()
    return started.args[0]


def create_key(panel, user: str = "admin", label: str = "notebook") -> CreateKeyDialog:
    dialog = CreateKeyDialog(panel.adapter, [user], panel)
    dialog.label.setText(label)
    dialog.submit()
    panel.refresh()
    return dialog


def test_start_serves_the_loaded_model_and_shows_its_base_url(api_tab, qtbot):
    base_url = start(api_tab, qtbot)

    assert api_tab.base_url.text() == base_url and f":{api_tab.port.value()}/v1" in base_url
    assert httpx.get(base_url.removesuffix("/v1") + "/health").json()["model"] == "tiny-llama"
    assert "tiny-llama" in api_tab.curl.toPlainText() and base_url in api_tab.python.toPlainText()
    assert api_tab.toggle.text() == "Stop API" and not api_tab.port.isEnabled()


def test_stop_stops_listening(api_tab, qtbot):
    base_url = start(api_tab, qtbot)

    with qtbot.waitSignal(api_tab.adapter.stopped, timeout=30_000):
        api_tab.toggle.click()

    with pytest.raises(httpx.ConnectError):
        httpx.get(base_url.removesuffix("/v1") + "/health")
    assert api_tab.toggle.text() == "Start API" and api_tab.status.text() == "Off"


def test_a_network_address_is_warned_about_and_requires_keys(api_tab):
    api_tab.require_keys.setChecked(False)

    api_tab.host.setCurrentText("0.0.0.0")

    assert api_tab.warning.isVisibleTo(api_tab) and "Reachable from the network" in api_tab.warning.text()
    assert api_tab.require_keys.isChecked() and not api_tab.require_keys.isEnabled()


def test_a_port_in_use_is_reported_and_the_switch_stays_off(api_tab, qtbot):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        api_tab.port.setValue(taken.getsockname()[1])
        with qtbot.waitSignal(api_tab.adapter.failed, timeout=30_000):
            api_tab.toggle.click()

    assert "already in use" in api_tab.status.text() and api_tab.toggle.text() == "Start API"


def test_a_new_key_is_listed_and_its_secret_shown_once(api_tab, qtbot):
    dialog = create_key(api_tab)
    shown = SecretDialog(dialog.created.secret, dialog.created.key.name, api_tab)
    qtbot.addWidget(shown)

    row = [api_tab.keys_table.item(0, column).text() for column in range(api_tab.keys_table.columnCount())]

    assert shown.secret.text().startswith("llmc_")
    assert row[1:3] == ["notebook", "admin"] and row[4] == "active"
    assert dialog.created.secret not in " ".join(row)  # the table shows the prefix only


def test_a_key_without_a_label_is_refused_in_the_dialog(api_tab):
    dialog = CreateKeyDialog(api_tab.adapter, ["admin"], api_tab)

    dialog.submit()

    assert dialog.created is None and "label" in dialog.error.text()


def test_revoke_marks_the_selected_key_revoked(api_tab):
    create_key(api_tab)
    api_tab.keys_table.selectRow(0)

    api_tab.revoke_button.click()

    assert api_tab.keys_table.item(0, 4).text() == "revoked"


def test_usage_of_a_key_shows_live(api_tab, qtbot):
    secret = create_key(api_tab).created.secret
    base_url = start(api_tab, qtbot)

    httpx.post(f"{base_url}/chat/completions", headers={"Authorization": f"Bearer {secret}"}, timeout=30,
               json={"model": "tiny-llama", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 2})
    api_tab.refresh_usage()

    assert api_tab.keys_table.item(0, 7).text() == "1"
    assert api_tab.in_flight.text() == "0 requests in flight"
