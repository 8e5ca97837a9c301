"""Choosing the device and precision for a load, and saying plainly when the machine cannot do what was asked."""

from __future__ import annotations

import functools
import time

import torch

from engine.errors import DeviceUnavailable, PrecisionUnsupported
from engine.weights import onednn

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
    """Return (precision name, dtype); `auto` resolves as `auto_precision` says."""
    precision, dtype, _why = choose_precision(name, device)
    return precision, dtype


def choose_precision(name: str, device: torch.device) -> tuple[str, torch.dtype, str]:
    """Return (precision name, dtype, why): `why` says what `auto` chose and for what reason ("" when named)."""
    if name not in PRECISIONS:
        raise PrecisionUnsupported(f"Unknown precision '{name}'; choose one of {', '.join(PRECISIONS)}.")
    why = ""
    if name == "auto":
        name, why = auto_precision(device)
    bf16_ok = device.type != "cuda" or torch.cuda.is_bf16_supported()
    if name in QUANTIZED:
        return name, torch.bfloat16 if bf16_ok else torch.float16, why
    if name == "bf16" and not bf16_ok:
        gpu = torch.cuda.get_device_name(device)
        raise PrecisionUnsupported(f"{gpu} cannot run bf16 (it needs compute capability 8.0 or newer). Use fp16 or fp32.")
    return name, _DTYPES[name], why


def auto_precision(device: torch.device) -> tuple[str, str]:
    """(precision, why) for `auto`: the fastest precision whose quality change is under 1 %.

    A GPU runs bf16 (fp16 without it): its fused attention and CUDA graphs serve 16-bit weights. On a CPU,
    decoding streams every weight once per token, so int8's half of bf16's bytes wins (SmolLM2-135M on two
    cores: int8 about 60 tok/s against 28-36 in fp32, perplexity +0.26 %; bf16 +0.27 %). A CPU with AMX
    multiplies bf16 in hardware, so there a probe times both kernels and the faster one is chosen."""
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return "bf16", "bf16 on a GPU"
        return "fp16", "fp16: this GPU has no bf16"
    if not cpu_has_amx():
        return "int8", "int8 is the fastest on this CPU within 1 % quality"
    int8_ms, bf16_ms = _cpu_matmul_probe()
    figures = f"int8 {int8_ms:.2f} ms, bf16 {bf16_ms:.2f} ms per probe step"
    if bf16_ms < int8_ms:
        return "bf16", f"bf16 is faster than int8 on this CPU's AMX ({figures})"
    return "int8", f"int8 is faster than bf16 on this CPU, AMX included ({figures})"


@functools.cache
def cpu_has_amx() -> bool:
    """Whether the CPU multiplies bf16 tiles in hardware (Intel AMX, Sapphire Rapids and later); Linux only."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return "amx_bf16" in line.split()
    except OSError:
        pass
    return False


@functools.cache
def _cpu_matmul_probe(rows: int = 2048, columns: int = 5632, repeats: int = 15) -> tuple[float, float]:
    """Best milliseconds of one decode-shaped matmul (one token through a 2048 x 5632 weight) in int8 and in
    bf16 (packed for oneDNN where the decoder packs it), interleaved; the best of each, since another program's load only ever adds time. Once per process."""
    weight = torch.randn(columns, rows, dtype=torch.bfloat16)
    weight_int8 = torch.randint(-127, 127, (columns, rows), dtype=torch.int8)
    scales = torch.rand(columns, dtype=torch.bfloat16)
    token = torch.randn(1, rows, dtype=torch.bfloat16)
    if onednn.packing_works():  # the bf16 kernel that will run (engine/forward/projections.py)
        packed = onednn.pack(weight)
        bf16 = lambda: onednn.packed_linear(token, packed, None)  # noqa: E731
    else:
        bf16 = lambda: torch.nn.functional.linear(token, weight)  # noqa: E731
    runs = {"int8": lambda: torch._weight_int8pack_mm(token, weight_int8, scales), "bf16": bf16}
    times: dict[str, list[float]] = {name: [] for name in runs}
    with torch.inference_mode():
        for name, run in runs.items():  # first calls pick kernels and warm the caches
            run()
        for _ in range(repeats):
            for name, run in runs.items():
                started = time.perf_counter()
                run()
                times[name].append((time.perf_counter() - started) * 1000)
    return min(times["int8"]), min(times["bf16"])


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return "cpu"
