"""How a ModelParallelStrategy run places the model on its ranks: FSDP2 (with a mixed-precision policy, or HSDP
over replica groups) and context parallelism over the strategy's second mesh dimension.

The strategy's mesh is ``data_parallel x tensor_parallel``; its sampler serves one batch per data-parallel group.
With ``context_parallel > 1`` the ``tensor_parallel`` dimension is the context-parallel group: its ranks share a
batch and each holds a slice of the token sequence (:mod:`itryon.models.context_parallel`), and FSDP2 shards over
every rank. Tensor parallelism proper is not offered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.distributed.device_mesh import DeviceMesh
from torch.distributed.fsdp import fully_shard

from itryon.models.precision import DTypeName, as_dtype


@dataclass(frozen=True)
class ParallelPlan:
    """``model.parallel``: the sharding of a ModelParallelStrategy run (ignored in a one-process run).

    * ``param_dtype`` / ``reduce_dtype``: FSDP2's ``MixedPrecisionPolicy``: the dtype the sharded fp32 parameters are
      all-gathered in (e.g. ``bfloat16``), and the dtype gradients are reduced in (None: the parameters' own). The
      sharded parameters and the optimizer state stay float32. Forward inputs are not cast (timesteps, rotary
      tables and modulation keep float32), so a ``param_dtype`` needs autocast (``trainer.precision: bf16-mixed``)
      to choose each op's dtype.
    * ``replicate``: HSDP: the ranks form ``replicate`` groups, parameters are sharded within a group and
      replicated across groups (1: plain FSDP over every rank).
    * ``reshard_after_forward``: free each block's gathered parameters after its forward (ZeRO-3, less memory) or
      keep them until the backward (ZeRO-2, less communication).
    * ``context_parallel``: ranks per context-parallel group, equal to ``trainer.strategy.tensor_parallel_size``
      (1: none), laid out as ``ring_degree`` rings (ring attention) of ``context_parallel / ring_degree`` Ulysses
      ranks; ``attention_backend`` is diffusers' kernel under it: ``native`` (SDPA: any device, masks, Ulysses only)
      or, on CUDA, ``flash`` / ``_native_cudnn`` / ``_native_flash``, which ring attention needs and which take no
      masks (so no ``zero_init_gates`` side tokens).
    """

    param_dtype: DTypeName | None = None
    reduce_dtype: DTypeName | None = "float32"
    replicate: int = 1
    reshard_after_forward: bool = True
    context_parallel: int = 1
    ring_degree: int = 1
    attention_backend: Literal["native", "flash", "_native_cudnn", "_native_flash"] = "native"

    def __post_init__(self) -> None:
        for key in ("replicate", "context_parallel", "ring_degree"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"model.parallel.{key} must be >= 1, got {getattr(self, key)}")
        if self.context_parallel % self.ring_degree:
            raise ValueError(
                f"model.parallel.ring_degree ({self.ring_degree}) must divide context_parallel ({self.context_parallel})"
            )
        if self.ring_degree > 1 and self.attention_backend == "native":
            raise ValueError(
                "model.parallel.ring_degree > 1 needs a kernel that returns the log-sum-exp: set "
                "model.parallel.attention_backend to flash, _native_cudnn or _native_flash (CUDA)"
            )

    def fsdp_kwargs(self) -> dict:
        """``fully_shard`` arguments besides the mesh."""
        kwargs: dict = {"reshard_after_forward": self.reshard_after_forward}
        if self.param_dtype is not None or self.reduce_dtype is not None:
            from torch.distributed.fsdp import MixedPrecisionPolicy

            kwargs["mp_policy"] = MixedPrecisionPolicy(
                param_dtype=None
                if self.param_dtype is None
                else as_dtype(self.param_dtype, "model.parallel.param_dtype"),
                reduce_dtype=None
                if self.reduce_dtype is None
                else as_dtype(self.reduce_dtype, "model.parallel.reduce_dtype"),
                cast_forward_inputs=False,  # float32 timesteps, rotary tables and positions; autocast picks op dtypes
            )
        return kwargs

    def check_precision(self, precision: str | None) -> None:
        """A ``param_dtype`` needs autocast (``trainer.precision`` ``bf16-mixed`` or ``16-mixed``)."""
        if self.param_dtype is not None and not str(precision).endswith("-mixed"):
            raise ValueError(
                f"model.parallel.param_dtype={self.param_dtype} gathers the weights in that dtype but leaves the "
                f"activations as they are: it needs autocast, trainer.precision=bf16-mixed (got {precision!r})"
            )

    def meshes(self, mesh: DeviceMesh | None):
        """``(fsdp_mesh, context_parallel)`` for the strategy's mesh (None, None in one process)."""
        if mesh is None:
            if self.replicate > 1 or self.context_parallel > 1:
                raise ValueError(
                    "model.parallel.replicate and context_parallel need a ModelParallelStrategy run over several "
                    "processes (configs/trainer/fsdp2_gpu.yaml, fsdp2_cpu.yaml)"
                )
            return None, None
        names = mesh.mesh_dim_names or ()
        data = mesh["data_parallel"].size() if "data_parallel" in names else mesh.size()
        second = mesh["tensor_parallel"].size() if "tensor_parallel" in names else 1
        if second != self.context_parallel:
            raise ValueError(
                f"trainer.strategy.tensor_parallel_size is {second} and model.parallel.context_parallel is "
                f"{self.context_parallel}: the strategy's second mesh dimension carries context parallelism, so the "
                "two must be equal (tensor parallelism proper is not offered)"
            )
        world = data * second
        if world % self.replicate:
            raise ValueError(f"model.parallel.replicate ({self.replicate}) must divide the number of ranks ({world})")
        from torch.distributed.device_mesh import init_device_mesh

        device = mesh.device_type
        if self.replicate > 1:
            fsdp_mesh = init_device_mesh(
                device, (self.replicate, world // self.replicate), mesh_dim_names=("replicate", "shard")
            )
        elif second > 1:
            fsdp_mesh = init_device_mesh(device, (world,), mesh_dim_names=("shard",))
        else:
            fsdp_mesh = data_parallel_mesh(mesh)
        context = None
        if self.context_parallel > 1:
            from itryon.models.context_parallel import context_parallel_config

            context = context_parallel_config(
                device,
                data,
                ulysses_degree=self.context_parallel // self.ring_degree,
                ring_degree=self.ring_degree,
                backend=self.attention_backend,
            )
        return fsdp_mesh, context


def data_parallel_mesh(mesh: DeviceMesh | None) -> DeviceMesh | None:
    """The ``data_parallel`` dimension of a ModelParallelStrategy mesh (the whole mesh if it has no names)."""
    if mesh is None:
        return None
    return mesh["data_parallel"] if mesh.mesh_dim_names and "data_parallel" in mesh.mesh_dim_names else mesh


def shard_parts(module: nn.Module, mesh: DeviceMesh, skip: Sequence[str] = (), **fsdp) -> None:
    """``fully_shard`` every child of ``module`` not named in ``skip`` that has trainable parameters."""
    for name, child in module.named_children():
        if name not in skip and any(p.requires_grad for p in child.parameters()):
            fully_shard(child, mesh=mesh, **fsdp)


def check_same_across(tensors: Sequence[torch.Tensor], parallel, what: str) -> None:
    """Raise, on every rank of ``parallel``'s context-parallel group, unless ``tensors`` are equal on all of them (the
    ranks split one sample's sequence, so they must share its batch, noise and times). Two small all-reduces."""
    import torch.distributed as dist

    stats = torch.stack([s for t in tensors for s in (t.detach().double().sum(), t.detach().double().square().sum())])
    low, high = stats.clone(), stats.clone()
    dist.all_reduce(low, op=dist.ReduceOp.MIN, group=parallel.group)
    dist.all_reduce(high, op=dist.ReduceOp.MAX, group=parallel.group)
    if not torch.equal(low, high):
        raise RuntimeError(
            f"context-parallel ranks have different {what}: the ranks of a group must share each batch and their "
            "random state (seed every rank and its data-loader workers by data-parallel rank)"
        )
