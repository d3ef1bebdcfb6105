"""FSDP2 for the parts of a TryOnModule that are not the backbone (the backbone applies its own plan)."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import fully_shard


def data_parallel_mesh(mesh: DeviceMesh | None) -> DeviceMesh | None:
    """The ``data_parallel`` dimension of a ModelParallelStrategy mesh (the whole mesh if it has no names)."""
    if mesh is None:
        return None
    return mesh["data_parallel"] if mesh.mesh_dim_names and "data_parallel" in mesh.mesh_dim_names else mesh


def shard_parts(module: nn.Module, mesh: DeviceMesh, skip: Sequence[str] = ()) -> None:
    """``fully_shard`` every child of ``module`` not named in ``skip`` that has trainable parameters."""
    for name, child in module.named_children():
        if name not in skip and any(p.requires_grad for p in child.parameters()):
            fully_shard(child, mesh=mesh)
