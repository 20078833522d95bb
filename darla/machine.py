"""What machine a measurement ran on, for the benchmark and study JSONs.

Timings from different CPUs are not comparable: the same default run took 11.9 minutes on a 2-core
AMD EPYC and 6.4 on a 2-core Intel Xeon with AMX (``benchmarks/results/run.json`` records which).
Every benchmark writes :func:`describe` next to its numbers so a reader can tell.
"""
from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

# ISA flags that change which code paths torch takes on a CPU (bf16 autocast, oneDNN kernels)
_FLAGS_OF_INTEREST = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU's model name (Linux ``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> list[str]:
    """Which of the ISA flags that matter to torch on a CPU this one has (empty off Linux)."""
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                return [f for f in _FLAGS_OF_INTEREST if f in have]
    except OSError:
        pass
    return []


def describe() -> dict:
    """CPU model and flags, core count, load, Python, torch and platform of this machine."""
    info = {
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    except (ImportError, AttributeError):
        pass
    try:
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    return info
