"""Whether the lean decode step is compiled with torch.compile: the modes a user can pick and what they mean."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

COMPILE_MODES = ("auto", "on", "off")


def compile_wanted(mode: str, device: "torch.device") -> bool:
    """"auto" compiles on a GPU only. On a CPU compiling runs in the background and, holding Python's GIL,
    slows the replies of its 10-40 s about fivefold (measured on two cores), so a CPU compiles when asked ("on")."""
    if mode not in COMPILE_MODES:
        raise ValueError(f"compile mode must be one of {', '.join(COMPILE_MODES)} (got {mode!r})")
    return mode == "on" or (mode == "auto" and device.type == "cuda")
