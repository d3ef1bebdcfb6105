"""Context (sequence) parallelism for long clips: the ranks of a context-parallel group each hold a slice of the
token sequence, and self-attention runs on the whole sequence through diffusers' context-parallel attention
(Ulysses all-to-all over heads, ring attention over key/value blocks, or both; ``diffusers.ContextParallelConfig``).

Every rank of a group runs the same batch with the same noise (a ModelParallelStrategy serves one batch to each
group, and the ranks draw the same random numbers). The backbone computes its embeddings on the whole sequence,
keeps its rank's slice of each token group (reference frames, video tokens, appended tokens: each group is cut into
equal slices, so that every rank holds the same layout and a key mask over one group is the same on every rank),
and gathers the head's output back to the whole sequence, so the loss and everything outside the backbone see full
tensors.

Gradients: the gather's backward sums the loss gradient of every rank (each holds the same loss), so a rank's
parameter gradients are ``degree`` times its slice's share; FSDP2 over the flattened data-parallel x context-parallel
ranks averages them back to the data-parallel mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

# diffusers' attention backends that run context-parallel attention on any device (the others need CUDA kernels)
PORTABLE_BACKEND = "native"


def context_parallel_config(
    device_type: str,
    data_parallel_size: int,
    *,
    ulysses_degree: int = 1,
    ring_degree: int = 1,
    backend: str = PORTABLE_BACKEND,
) -> ContextParallel:
    """This rank's :class:`ContextParallel` when the world is ``data_parallel_size`` groups of
    ``ulysses_degree * ring_degree`` consecutive ranks (a ModelParallelStrategy's data-parallel x tensor-parallel
    layout). Every rank must call it (it builds device meshes)."""
    from diffusers import ContextParallelConfig, ParallelConfig
    from torch.distributed.device_mesh import init_device_mesh

    degree = ulysses_degree * ring_degree
    world = dist.get_world_size()
    if data_parallel_size * degree != world:
        raise ValueError(
            f"{data_parallel_size} data-parallel groups x ulysses_degree {ulysses_degree} x ring_degree "
            f"{ring_degree} must equal the world size {world}"
        )
    group_mesh = init_device_mesh(device_type, (data_parallel_size, degree), mesh_dim_names=("cp_data", "cp"))["cp"]
    diffusers_mesh = init_device_mesh(
        device_type, (data_parallel_size, ring_degree, ulysses_degree), mesh_dim_names=("cp_data", "ring", "ulysses")
    )["ring", "ulysses"]
    config = ParallelConfig(
        context_parallel_config=ContextParallelConfig(
            ring_degree=ring_degree, ulysses_degree=ulysses_degree, mesh=diffusers_mesh
        )
    )
    device = torch.device("cpu")
    if device_type != "cpu":
        device = torch.device(device_type, torch.accelerator.current_device_index())
    config.setup(dist.get_rank(), world, device, mesh=diffusers_mesh)
    return ContextParallel(config, group_mesh, backend)


@dataclass(frozen=True)
class ContextParallel:
    """This rank's place in its context-parallel group and the attention that crosses the group."""

    config: object  # diffusers.ParallelConfig with its context_parallel_config set up
    mesh: object  # 1-D DeviceMesh of the group
    backend: str = PORTABLE_BACKEND  # diffusers attention backend (native; flash / _native_cudnn for ring on CUDA)

    @property
    def degree(self) -> int:
        return int(self.mesh.size())

    @property
    def rank(self) -> int:
        return int(self.mesh.get_local_rank())

    @property
    def group(self):
        return self.mesh.get_group()

    def attention(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Self-attention over the group's whole sequence: ``(B, H, n, D)`` slices of q, k, v (``n`` tokens per rank)
        -> ``(B, H, n, D)`` this rank's slice of the output. ``key_mask`` ``(N,)`` bool (True: may be attended) is over
        the whole sequence in the group's order (rank 0's tokens, then rank 1's, ...); a masked attention needs a
        kernel that takes masks (``native``)."""
        from diffusers.models.attention_dispatch import dispatch_attention_fn

        mask = None if key_mask is None else key_mask[None, None, None]  # (1, 1, 1, N)
        out = dispatch_attention_fn(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            attn_mask=mask,
            backend=self.backend,
            parallel_config=self.config,
        )  # (B, n, H, D)
        return out.transpose(1, 2)

    def check_heads(self, num_heads: int, owner: str) -> None:
        ulysses = self.config.context_parallel_config.ulysses_degree
        if num_heads % ulysses:
            raise ValueError(
                f"{owner} has {num_heads} attention heads: Ulysses context parallelism over {ulysses} ranks "
                "(model.parallel.context_parallel / ring_degree) needs a number of heads divisible by it"
            )


@dataclass(frozen=True)
class SequenceSlices:
    """The token sequence as consecutive groups (e.g. reference, video, appended tokens), each cut into ``degree``
    equal slices; a rank keeps slice ``rank`` of every group, in order."""

    sizes: tuple[int, ...]  # tokens per group, whole sequence
    degree: int
    rank: int

    @classmethod
    def of(cls, sizes: Sequence[int], parallel: ContextParallel, names: Sequence[str]) -> SequenceSlices:
        for size, name in zip(sizes, names):
            if size % parallel.degree:
                raise ValueError(
                    f"context parallelism over {parallel.degree} ranks needs every token group in multiples of "
                    f"{parallel.degree}: {name} has {size} tokens"
                )
        return cls(tuple(int(s) for s in sizes), parallel.degree, parallel.rank)

    @property
    def local_sizes(self) -> tuple[int, ...]:
        return tuple(size // self.degree for size in self.sizes)

    def local_span(self, group: int) -> tuple[int, int]:
        """``[start, end)`` of group ``group``'s slice in this rank's tokens."""
        start = sum(self.local_sizes[:group])
        return start, start + self.local_sizes[group]

    def split(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        """Whole-sequence ``x`` (the sequence along ``dim``, possibly only the first groups) -> this rank's slices."""
        parts, start = [], 0
        for size, local in zip(self.sizes, self.local_sizes):
            if start >= x.shape[dim]:
                break
            parts.append(x.narrow(dim, start + self.rank * local, local))
            start += size
        if start != x.shape[dim]:
            raise ValueError(f"a tensor of {x.shape[dim]} tokens does not end at a group boundary of {self.sizes}")
        return torch.cat(parts, dim=dim) if len(parts) > 1 else parts[0]

    def gather(self, x: torch.Tensor, groups: Sequence[int], dim: int, group) -> torch.Tensor:
        """This rank's slices of ``groups`` (consecutive along ``dim``) -> those groups' whole sequence, on every
        rank. Differentiable: the backward sums every rank's gradient and keeps this rank's slice."""
        from torch.distributed._functional_collectives import all_gather_single_autograd

        gathered = all_gather_single_autograd(x.movedim(dim, 0).contiguous(), 0, group)  # ranks in order, dim 0
        pieces = gathered.movedim(0, dim).chunk(self.degree, dim=dim)  # one (.., n_local, ..) tensor per rank
        out, start = [], 0
        for index in groups:
            local = self.local_sizes[index]
            out.extend(piece.narrow(dim, start, local) for piece in pieces)
            start += local
        if start != x.shape[dim]:
            raise ValueError(f"gather of groups {list(groups)} expects {start} local tokens, got {x.shape[dim]}")
        return torch.cat(out, dim=dim)
