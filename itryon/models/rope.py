"""3D rotary position embedding of the Wan2.1 DiT: the head dimension is split across time, height and width.

Rotation convention (shared with A-RoPE): channel pairs ``(2i, 2i + 1)`` of a head are rotated by angle
``position * frequency_i``. Tables are computed from explicit integer positions, so tokens outside the
video grid (reference frames, appended condition tokens) get rotations from the same formula.
"""

from __future__ import annotations

import torch
from torch import nn


def rope_axis_dims(head_dim: int) -> tuple[int, int, int]:
    """Channels of a head given to (time, height, width); Wan gives height and width ``2 * (head_dim // 6)`` each."""
    if head_dim % 2 != 0:
        raise ValueError(f"rotary embedding needs an even head_dim, got {head_dim}")
    spatial = 2 * (head_dim // 6)
    return head_dim - 2 * spatial, spatial, spatial


def rope_frequencies(dim: int, theta: float = 10000.0) -> torch.Tensor:
    """``(dim // 2,)`` float64 angular frequencies ``theta ** (-2i / dim)`` of a 1D rotary embedding over ``dim`` channels."""
    return 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float64)[: dim // 2] / dim)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs of ``x`` ``(..., N, D)`` by angles with ``cos``/``sin`` ``(N, D/2)`` (or broadcastable).

    Computed in float32 (at least) and returned in ``x``'s dtype.
    """
    compute = torch.promote_types(x.dtype, torch.float32)
    pairs = x.to(compute).unflatten(-1, (-1, 2))  # (..., N, D/2, 2)
    x0, x1 = pairs[..., 0], pairs[..., 1]
    cos = cos.to(compute)
    sin = sin.to(compute)
    rotated = torch.stack((x0 * cos - x1 * sin, x0 * sin + x1 * cos), dim=-1)
    return rotated.flatten(-2).to(x.dtype)


def grid_positions(frames: int, height: int, width: int, *, frame_offset: int = 0, device=None) -> torch.Tensor:
    """``(frames * height * width, 3)`` long (t, h, w) positions of a token grid in raster order (t slowest)."""
    t = torch.arange(frame_offset, frame_offset + frames, device=device)
    h = torch.arange(height, device=device)
    w = torch.arange(width, device=device)
    grid = torch.stack(torch.meshgrid(t, h, w, indexing="ij"), dim=-1)  # (F, H, W, 3)
    return grid.reshape(-1, 3)


class RotaryEmbedding3D(nn.Module):
    """cos/sin tables of Wan's 3D RoPE for arbitrary (t, h, w) integer positions.

    ``max_position`` mirrors Wan's precomputed table length (``rope_max_seq_len``): positions at or
    beyond it are rejected, as the reference implementation cannot represent them either.
    """

    def __init__(self, head_dim: int, *, max_position: int = 1024, theta: float = 10000.0):
        super().__init__()
        self.head_dim = head_dim
        self.max_position = max_position
        self.axis_dims = rope_axis_dims(head_dim)
        with torch.device("cpu"):  # real tables even when the model is built on the meta device
            freqs = torch.cat([rope_frequencies(d, theta) for d in self.axis_dims])  # (D/2,)
            axis = torch.cat([torch.full((d // 2,), i, dtype=torch.long) for i, d in enumerate(self.axis_dims)])
        # plain tensors, not buffers: a module-wide ``.to(bfloat16)`` must not round the float64 frequencies
        self.freqs = freqs
        self.axis = axis

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``positions`` ``(N, 3)`` long -> (cos, sin), each ``(N, head_dim // 2)`` float32."""
        if positions.ndim != 2 or positions.shape[-1] != 3:
            raise ValueError(f"positions must be (N, 3) (t, h, w), got shape {tuple(positions.shape)}")
        if positions.numel() and (int(positions.max()) >= self.max_position or int(positions.min()) < 0):
            raise ValueError(
                f"rotary positions must lie in [0, {self.max_position}) (rope_max_seq_len), "
                f"got range [{int(positions.min())}, {int(positions.max())}]"
            )
        device = positions.device
        per_channel = positions[:, self.axis.to(device)].to(torch.float64)  # (N, D/2)
        angles = per_channel * self.freqs.to(device)  # float64 like Wan's table, then float32 for use
        return angles.cos().float(), angles.sin().float()
