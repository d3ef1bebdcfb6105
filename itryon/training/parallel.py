"""FSDP2 sharding of a TryOnModule: per block first, then each top-level part (root last)."""

from __future__ import annotations

from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import fully_shard


def shard_module(module: nn.Module, mesh: DeviceMesh) -> None:
    """Shard the backbone's blocks, the backbone, and every other part that has trainable parameters.

    ``mesh`` is the ModelParallelStrategy mesh; only its ``data_parallel`` dimension shards parameters.
    """
    dp_mesh = mesh["data_parallel"] if mesh.mesh_dim_names and "data_parallel" in mesh.mesh_dim_names else mesh
    backbone = module.backbone
    for block in getattr(backbone, "blocks", []):
        fully_shard(block, mesh=dp_mesh)
    for block in getattr(backbone, "vace_blocks", None) or []:
        fully_shard(block, mesh=dp_mesh)
    fully_shard(backbone, mesh=dp_mesh)
    for name, child in module.named_children():
        if name in ("backbone", "vae"):
            continue
        if any(p.requires_grad for p in child.parameters()):
            fully_shard(child, mesh=dp_mesh)
