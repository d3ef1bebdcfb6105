"""Semantic interaction guidance: the global caption and time-stamped action captions placed by A-RoPE.

The video is split into temporal segments, its latent frames (Wan: 1 + 4k frames -> 1 + k latent frames). An
action caption covering latent frames ``a..b`` is placed, for :class:`~itryon.models.ActionRoPE`, at

* ``positions="segment"``: one copy of its tokens per covered segment ``s``, at position ``s * k``;
* ``positions="center"``: one copy at the span's centre ``(a + b) / 2 * k``;
* ``positions="none"``: one copy without position (A-RoPE off: plain cross-attention over the same tokens).

Segments without interaction get the empty action caption, with no position; global-caption keys are never
rotated. With ``hard_mask=True`` a frame may attend only the global caption and its own action's tokens (the
copy at its own segment in ``segment`` mode), or the empty action caption when no action covers it.

The global caption is the base context of the cross-attention; the action captions are declared ``gated``: on a
``WanDiT(zero_init_gates=True)`` they enter through the zero-initialised gated branch (an exact no-op at init).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from itryon.cache.lookup import cached_text
from itryon.conditioning.base import AdapterOutput, ConditionEnv, ConditioningAdapter
from itryon.data.temporal import latent_frame_index, pixel_frame_count

POSITION_MODES = ("segment", "center", "none")


class GlobalCaptionAdapter(ConditioningAdapter):
    """Reads ``caption`` (``list[str]``) through a frozen text encoder into the position-free context ``(B, L, D)``.

    The encoder pads with zero vectors (Wan style, attended like Wan's padding). Null condition: the empty string.
    """

    def __init__(self, encoder: nn.Module, drop_prob: float = 0.1, trainable: bool = False) -> None:
        super().__init__(("caption",), "context", trainable=trainable, drop_prob=drop_prob)
        self.encoder = encoder

    def forward(self, batch: Mapping[str, Any], env: ConditionEnv, keep: torch.Tensor) -> AdapterOutput:
        captions = batch["caption"]
        if isinstance(captions, str) or len(captions) != env.latent_shape[0]:
            raise ValueError(f"batch key 'caption' must be a list of {env.latent_shape[0]} strings, got {captions!r}")
        texts = [c if bool(k) else "" for c, k in zip(captions, keep.tolist())]
        emb, _ = cached_text(self.encoder, texts)  # (B, L, D), zero at padding
        return AdapterOutput("context", emb)


@dataclass(frozen=True)
class ActionSlot:
    """One copy of a caption's tokens in the context: its text, A-RoPE position (None = position-free) and the
    latent frames allowed to see it under the hard segment mask."""

    text: str
    position: float | None
    segments: tuple[int, ...]


def action_slots(
    actions: Sequence[Mapping[str, Any]],
    num_frames: int,
    temporal_compression: int,
    *,
    k: int = 4,
    positions: str = "segment",
    empty_caption: str = "",
) -> list[ActionSlot]:
    """The caption copies of one clip: first the empty action caption (seen by uncovered segments), then the actions.

    ``actions`` are ``{start, end, text}`` with frame indices, ``end`` exclusive.
    """
    if positions not in POSITION_MODES:
        raise ValueError(f"action caption positions must be one of {POSITION_MODES}, got {positions!r}")
    index = latent_frame_index(num_frames, temporal_compression)  # (T,) latent frame of each pixel frame
    num_segments = int(index[-1]) + 1
    covered: set[int] = set()
    slots: list[ActionSlot] = []
    for i, action in enumerate(actions):
        start, end = int(action["start"]), int(action["end"])
        if not 0 <= start < end <= num_frames:
            raise ValueError(f"actions[{i}] span [{start}, {end}) is not inside the clip's {num_frames} frames")
        first, last = int(index[start]), int(index[end - 1])
        span = tuple(range(first, last + 1))
        covered.update(span)
        text = str(action["text"])
        if positions == "segment":
            slots += [ActionSlot(text, float(s * k), (s,)) for s in span]
        elif positions == "center":
            slots.append(ActionSlot(text, (first + last) / 2 * k, span))
        else:
            slots.append(ActionSlot(text, None, span))
    uncovered = tuple(s for s in range(num_segments) if s not in covered)
    return [ActionSlot(empty_caption, None, uncovered), *slots]


class ActionCaptionAdapter(ConditioningAdapter):
    """Reads ``actions`` (per sample a list of ``{start, end, text}``) into A-RoPE-positioned context tokens.

    Output: context ``(B, L_a, D)`` (padding: zero vectors), positions ``(B, L_a)`` (NaN = position-free; None
    with ``positions="none"`` or when no sample has an action) and, when any key must be hidden from some frame (padding, hard mask), the mask
    ``(B, F, L_a)``. Null condition (CFG dropout): no actions, i.e. the empty action caption everywhere.

    Args:
        encoder: the text encoder; None shares the encoder of the adapter named ``encoder_from``.
        encoder_from: adapter whose ``encoder`` is shared when ``encoder`` is None.
        k: A-RoPE stride (must equal the backbone's ``ActionRoPE.k``).
        positions: ``segment``, ``center`` or ``none`` (A-RoPE off).
        hard_mask: a frame sees only its own action's tokens (plus the global caption).
        empty_caption: the text of a segment without interaction.
        gated: mark the tokens for the backbone's gated cross-attention branch (used with ``zero_init_gates``).
    """

    def __init__(
        self,
        encoder: nn.Module | None = None,
        encoder_from: str = "caption",
        k: int = 4,
        positions: Literal["segment", "center", "none"] = "segment",
        hard_mask: bool = False,
        empty_caption: str = "",
        drop_prob: float = 0.1,
        gated: bool = True,
    ) -> None:
        if positions not in POSITION_MODES:
            raise ValueError(f"ActionCaptionAdapter positions must be one of {POSITION_MODES}, got {positions!r}")
        if k < 1:
            raise ValueError(f"ActionCaptionAdapter k must be >= 1, got {k}")
        super().__init__(("actions",), "context", trainable=False, drop_prob=drop_prob, gated=gated)
        self.encoder = encoder
        self.encoder_from = encoder_from
        self.k = k
        self.positions = positions
        self.hard_mask = hard_mask
        self.empty_caption = empty_caption

    @property
    def backbone_kinds(self) -> frozenset[str]:
        """Context with a per-frame mask (padding, hard mask) and, unless ``positions="none"``, rotary positions."""
        extra = {"context_mask"} | ({"context_positions"} if self.positions != "none" else set())
        return super().backbone_kinds | extra

    def bind(self, adapters: Mapping[str, ConditioningAdapter]) -> None:
        if self.encoder is not None:
            return
        source = adapters.get(self.encoder_from)
        shared = getattr(source, "encoder", None)
        if not isinstance(shared, nn.Module):
            raise ValueError(
                f"ActionCaptionAdapter shares the text encoder of adapter '{self.encoder_from}', but the stack has "
                f"{'no such adapter' if source is None else 'no encoder there'}; adapters: {sorted(adapters)}. "
                "Pass `encoder` or set `encoder_from`"
            )
        self.__dict__["shared_encoder"] = shared  # not a submodule: its owner saves and moves it

    @property
    def text_encoder(self) -> nn.Module:
        encoder = self.encoder if self.encoder is not None else self.__dict__.get("shared_encoder")
        if encoder is None:
            raise RuntimeError(
                "ActionCaptionAdapter has no text encoder: pass `encoder` or add it to a ConditioningStack"
            )
        return encoder

    def forward(self, batch: Mapping[str, Any], env: ConditionEnv, keep: torch.Tensor) -> AdapterOutput:
        b, _, frames, _, _ = env.latent_shape
        c = env.temporal_compression
        num_frames = pixel_frame_count(frames, c)
        actions = batch["actions"]
        if len(actions) != b:
            raise ValueError(f"batch key 'actions' must hold one action list per sample ({b}), got {len(actions)}")

        # 1. caption copies per sample, then one encoder call for the distinct texts
        per_sample = []
        for i, (acts, kept) in enumerate(zip(actions, keep.tolist())):
            try:
                per_sample.append(
                    action_slots(
                        acts if kept else [],
                        num_frames,
                        c,
                        k=self.k,
                        positions=self.positions,
                        empty_caption=self.empty_caption,
                    )
                )
            except ValueError as err:
                raise ValueError(f"batch key 'actions', sample {i}: {err}") from err
        texts = sorted({slot.text for slots in per_sample for slot in slots})
        emb, mask = cached_text(self.text_encoder, texts)  # (U, L, D), (U, L)
        tokens = {t: emb[j][mask[j]] for j, t in enumerate(texts)}  # text -> (n_t, D)

        # 2. assemble keys, positions and per-frame visibility, padded to the longest sample
        lengths = [sum(tokens[s.text].shape[0] for s in slots) for slots in per_sample]
        longest = max(lengths)
        device = emb.device
        context = emb.new_zeros(b, longest, emb.shape[-1])
        positions = torch.full((b, longest), float("nan"), device=device)
        visible = torch.zeros(b, frames, longest, dtype=torch.bool, device=device)
        for i, slots in enumerate(per_sample):
            at = 0
            for slot in slots:
                n = tokens[slot.text].shape[0]
                context[i, at : at + n] = tokens[slot.text]
                if slot.position is not None:
                    positions[i, at : at + n] = slot.position
                if self.hard_mask:
                    visible[i, list(slot.segments), at : at + n] = True
                else:
                    visible[i, :, at : at + n] = True
                at += n
        out_mask = None if bool(visible.all()) else visible
        # no positioned key in the batch: plain cross-attention, exactly (the rotary hook is skipped)
        out_positions = None if self.positions == "none" or bool(torch.isnan(positions).all()) else positions
        return AdapterOutput("context", context, positions=out_positions, mask=out_mask)
