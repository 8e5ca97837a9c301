"""Forms built the same way everywhere: a titled group of labelled rows, and the one-line notice under a form."""

from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtWidgets import QFormLayout, QGroupBox, QLabel, QLayout, QWidget

# A row is ("Label", field), a bare widget or layout spanning both columns, or None to skip it.
FormRow = tuple[str, QWidget | QLayout] | QWidget | QLayout | None


def add_rows(form: QFormLayout, rows: Iterable[FormRow]) -> QFormLayout:
    for row in rows:
        if row is None:
            continue
        if isinstance(row, tuple):
            form.addRow(*row)
        else:
            form.addRow(row)
    return form


def form_group(title: str, rows: Iterable[FormRow]) -> tuple[QGroupBox, QFormLayout]:
    """A `QGroupBox` titled `title` holding a form of `rows`; the form is returned too, for rows added later."""
    group = QGroupBox(title)
    form = add_rows(QFormLayout(group), rows)
    return group, form


def notice_label(object_name: str, text: str = "") -> QLabel:
    """A word-wrapped label for a form's message (an error, a warning, a verdict), styled by `object_name`."""
    label = QLabel(text)
    label.setObjectName(object_name)
    label.setWordWrap(True)
    return label
