"""What every benchmark prints first: the machine, the load on it, and the command."""

from __future__ import annotations

import os
import platform
import shlex
import sys
import time
from collections.abc import Callable
from typing import Any

import torch


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def describe() -> list[str]:
    spec = getattr(sys.modules["__main__"], "__spec__", None)
    program = ["-m", spec.name] if spec is not None else [sys.argv[0]]
    lines = [
        f"command: {shlex.join(['python', *program, *sys.argv[1:]])}",
        f"machine: {platform.node()} | {platform.platform()} | {cpu_name()} | "
        f"{os.cpu_count()} CPUs | torch {torch.__version__} ({torch.get_num_threads()} threads)",
    ]
    if hasattr(os, "getloadavg"):
        one, five, fifteen = os.getloadavg()
        lines.append(f"load average (1, 5, 15 min): {one:.2f} {five:.2f} {fifteen:.2f}")
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            lines.append(f"gpu {i}: {p.name}, {p.total_memory / 2**30:.0f} GiB")
    else:
        lines.append("gpu: none")
    return lines


def timed(func: Callable[[], Any], sync: bool = False) -> tuple[Any, float, float]:
    """(result, wall seconds, CPU seconds of this process) of one call."""
    if sync and torch.cuda.is_available():
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter(), time.process_time()
    result = func()
    if sync and torch.cuda.is_available():
        torch.cuda.synchronize()
    return result, time.perf_counter() - wall, time.process_time() - cpu
