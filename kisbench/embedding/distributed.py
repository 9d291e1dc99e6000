"""One stage as several processes under ``torchrun`` (one per GPU, on one or more nodes).

torchrun starts the processes and tells each its place through environment variables
(``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``). The processes only need to
wait for each other (work is shared through files), so the process group is always gloo,
which runs over TCP on any machine, with or without GPUs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

# A process that finished its shard waits at a barrier for the slowest one.
BARRIER_TIMEOUT = timedelta(days=1)


@dataclass(frozen=True)
class Group:
    """This process's place among the processes of one run (a single process: 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1

    @property
    def first(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        """Wait until every process gets here (nothing to wait for when alone)."""
        if self.world > 1:
            dist.barrier()


SINGLE = Group()


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def join() -> Group:
    """This process's group, from torchrun's environment; starts the gloo group if there are
    several processes. A plain ``python -m ...`` run is a group of one."""
    world = _env_int("WORLD_SIZE", 1)
    group = Group(
        rank=_env_int("RANK", 0),
        world=world,
        local_rank=_env_int("LOCAL_RANK", 0),
        local_world=_env_int("LOCAL_WORLD_SIZE", 1),
    )
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo", timeout=BARRIER_TIMEOUT)
    if world > 1 and torch.cuda.is_available():
        torch.cuda.set_device(group.local_rank % torch.cuda.device_count())
    return group


def leave(group: Group) -> None:
    if group.world > 1 and dist.is_initialized():
        dist.destroy_process_group()


def device_for(group: Group, device: str) -> str:
    """The device of this process: with several processes on a GPU node, GPU ``LOCAL_RANK``."""
    if group.world > 1 and device in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{group.local_rank % torch.cuda.device_count()}"
    return device
