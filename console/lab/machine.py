"""The machine a sweep ran on, stored with it so two machines' results compare side by side: CPU model and
cores, memory, GPU and driver, and the torch and transformers versions."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import psutil
import torch


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_driver() -> str | None:
    """The NVIDIA driver version from NVML, or None without one (graceful: no driver is a normal state)."""
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            version = pynvml.nvmlSystemGetDriverVersion()
            return version.decode() if isinstance(version, bytes) else str(version)
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no library, no driver, no device: NVML raises its own types for each
        return None


def describe_machine() -> dict:
    import transformers

    cuda = torch.cuda.is_available()
    return {
        "cpu": cpu_model(),
        "cpu_cores": psutil.cpu_count(logical=False) or os.cpu_count(),
        "cpu_threads": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "gpu": torch.cuda.get_device_name(0) if cuda else None,
        "gpu_driver": gpu_driver() if cuda else None,
        "cuda": torch.version.cuda if cuda else None,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
    }


def machine_line(machine: dict) -> str:
    """One line a person reads: "AMD EPYC 7B13 · 2 cores · no GPU · torch 2.13.0 · transformers 5.24.0"."""
    gpu = f"{machine['gpu']} (driver {machine.get('gpu_driver') or '?'})" if machine.get("gpu") else "no GPU"
    return (f"{machine.get('cpu', '?')} · {machine.get('cpu_cores', '?')} cores · {gpu} · "
            f"torch {machine.get('torch', '?')} · transformers {machine.get('transformers', '?')}")
