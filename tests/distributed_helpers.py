"""Running a test body on two gloo CPU processes."""

from __future__ import annotations

import socket
from collections.abc import Callable

import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn_two(worker: Callable[..., None], *args: object) -> None:
    """``worker(rank, port, *args)`` on ranks 0 and 1 (``port``: a free TCP port for the process group)."""
    mp.spawn(worker, args=(free_port(), *args), nprocs=2, join=True)
