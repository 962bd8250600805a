"""CPU accounting around one measurement: the server's, the load generator's, and everyone
else's on the machine (other people's jobs share these cores and make throughput noisy)."""

from __future__ import annotations

import resource
import time
from dataclasses import dataclass

from .servers import group_cpu_seconds, machine_busy_seconds

__all__ = ["Meter", "Usage"]


@dataclass(frozen=True, slots=True)
class Usage:
    wall_s: float
    server_cpu_s: float
    client_cpu_s: float
    others_cpu_s: float

    @property
    def others_cores(self) -> float:
        """Cores kept busy by processes that are neither the server nor the load generator."""
        return self.others_cpu_s / self.wall_s if self.wall_s else 0.0


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Meter:
    """Started before a measurement, read after it (the load generator is a child process of
    this one, or this process itself)."""

    def __init__(self, server_pgid: int | None) -> None:
        self.pgid = server_pgid
        self.wall = time.monotonic()
        self.server = group_cpu_seconds(server_pgid) if server_pgid else 0.0
        self.client = _children_cpu() + _self_cpu()
        self.machine = machine_busy_seconds()

    def read(self) -> Usage:
        server = (group_cpu_seconds(self.pgid) if self.pgid else 0.0) - self.server
        client = _children_cpu() + _self_cpu() - self.client
        machine = machine_busy_seconds() - self.machine
        return Usage(
            wall_s=time.monotonic() - self.wall,
            server_cpu_s=server,
            client_cpu_s=client,
            others_cpu_s=max(machine - server - client, 0.0),
        )
