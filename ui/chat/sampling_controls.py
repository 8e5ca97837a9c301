"""The system prompt and sampling controls beside the chat, turned into `SamplingParams`."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QGroupBox,
    QPlainTextEdit,
    QVBoxLayout,
    QWidget,
)

from console.chat.conversation import DEFAULT_SYSTEM_PROMPT
from console.settings.store import MAX_NEW_TOKENS
from engine import SamplingParams
from ui.widgets.forms import form_group
from ui.widgets.spin_boxes import double_spin_box, int_spin_box


class SamplingControls(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        defaults = SamplingParams()
        self.system_prompt = QPlainTextEdit(DEFAULT_SYSTEM_PROMPT)
        self.system_prompt.setPlaceholderText("Instructions the model follows for the whole conversation")
        self.system_prompt.setFixedHeight(90)
        self.temperature = double_spin_box(0.0, 5.0, 0.05, defaults.temperature, "0 is greedy: the same answer every time")
        self.top_p = double_spin_box(0.01, 1.0, 0.05, defaults.top_p, "Sample only from the most likely tokens holding this much probability")
        self.top_k = int_spin_box(0, 1000, defaults.top_k, "Sample only from the k most likely tokens (0 = off)")
        self.repetition_penalty = double_spin_box(0.5, 3.0, 0.05, defaults.repetition_penalty, "Above 1 discourages repeating tokens")
        self.max_new_tokens = int_spin_box(1, MAX_NEW_TOKENS, defaults.max_new_tokens, "Longest reply, in tokens")
        self.seed = int_spin_box(-1, 2**31 - 1, -1, "Fixed seed for repeatable sampling (-1 = random)")
        self.seed.setSpecialValueText("random")
        self.stop_strings = QPlainTextEdit()
        self.stop_strings.setPlaceholderText("One stop string per line")
        self.stop_strings.setFixedHeight(60)

        sampling, _form = form_group("Sampling", [
            ("Temperature", self.temperature),
            ("Top-p", self.top_p),
            ("Top-k", self.top_k),
            ("Repetition penalty", self.repetition_penalty),
            ("Max new tokens", self.max_new_tokens),
            ("Seed", self.seed),
            ("Stop strings", self.stop_strings),
        ])
        system = QGroupBox("System prompt")
        system_layout = QVBoxLayout(system)
        system_layout.addWidget(self.system_prompt)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(system)
        layout.addWidget(sampling)
        layout.addStretch(1)

    def params(self) -> SamplingParams:
        stops = tuple(line for line in self.stop_strings.toPlainText().splitlines() if line)
        return SamplingParams(
            temperature=self.temperature.value(),
            top_p=self.top_p.value(),
            top_k=self.top_k.value(),
            repetition_penalty=self.repetition_penalty.value(),
            max_new_tokens=self.max_new_tokens.value(),
            stop=stops,
            seed=None if self.seed.value() < 0 else self.seed.value(),
        )
