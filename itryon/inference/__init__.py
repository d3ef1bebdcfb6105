"""Inference for users: the diffusers pipeline and its export, per-condition guidance, videos of any length and size.

Layers: :mod:`.sampling` (one batch at the model's shape), :mod:`.guidance` (per-condition CFG in one batched call),
:mod:`.windows` and :mod:`.generate` (any length and size), :mod:`.pipeline` and :mod:`.export` (the
``DiffusionPipeline`` and a run's folder).
"""

from itryon.inference.guidance import GROUP_KEYS, GuidanceGroup, guidance_groups
from itryon.inference.pipeline import ITryOnPipeline, ITryOnPipelineOutput

__all__ = ["GROUP_KEYS", "GuidanceGroup", "ITryOnPipeline", "ITryOnPipelineOutput", "guidance_groups"]
