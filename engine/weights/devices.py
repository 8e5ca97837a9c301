"""Choosing the device and precision for a load, and saying plainly when the machine cannot do what was asked."""

from __future__ import annotations

import torch

from engine.errors import DeviceUnavailable, PrecisionUnsupported

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8", "int4")
QUANTIZED = ("int8", "int4")  # weight-only; activations in bf16 (fp16 on GPUs without bf16)
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def cuda_available() -> bool:
    return torch.cuda.is_available()


def resolve_device(name: str) -> torch.device:
    if name not in DEVICES:
        raise DeviceUnavailable(f"Unknown device '{name}'; choose one of {', '.join(DEVICES)}.")
    if name == "auto":
        return torch.device("cuda" if cuda_available() else "cpu")
    if name == "cuda" and not cuda_available():
        reason = "this build of PyTorch has no CUDA support" if torch.version.cuda is None else "no NVIDIA GPU or driver was found"
        raise DeviceUnavailable(f"CUDA was requested, but {reason}. Choose device 'cpu' or 'auto'.")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> tuple[str, torch.dtype]:
    """Return (precision name, dtype). `auto` is bf16 on a GPU that has it, fp16 on older GPUs, fp32 on CPU."""
    if name not in PRECISIONS:
        raise PrecisionUnsupported(f"Unknown precision '{name}'; choose one of {', '.join(PRECISIONS)}.")
    if name == "auto":
        if device.type == "cuda":
            name = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            name = "fp32"
    bf16_ok = device.type != "cuda" or torch.cuda.is_bf16_supported()
    if name in QUANTIZED:
        return name, torch.bfloat16 if bf16_ok else torch.float16
    if name == "bf16" and not bf16_ok:
        gpu = torch.cuda.get_device_name(device)
        raise PrecisionUnsupported(f"{gpu} cannot run bf16 (it needs compute capability 8.0 or newer). Use fp16 or fp32.")
    return name, _DTYPES[name]


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return "cpu"
