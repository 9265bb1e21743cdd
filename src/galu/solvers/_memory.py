"""How much memory a solver may use on a device."""

from __future__ import annotations

import os

import torch


def available_bytes(device: torch.device) -> int:
    """Free bytes on ``device``: ``MemAvailable`` for the CPU, the CUDA driver's view for GPUs."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
