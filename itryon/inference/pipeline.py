"""``ITryOnPipeline``: the trained model as a diffusers ``DiffusionPipeline``.

Components (a folder laid out as diffusers lays out pipelines, ``model_index.json`` + one folder per component):
``transformer`` (the backbone), ``vae``, ``text_encoder`` (the caption adapters' encoder), ``tokenizer`` (None for
itryon's byte-level encoder, which tokenises itself), ``scheduler`` (diffusers' flow scheduler: Euler, UniPC or
DPM++) and ``conditioning`` (the adapters: person, pose, garment, hand prior, captions). ``itryon export`` writes
the folder from a run; ``ITryOnPipeline.from_pretrained(DIR)`` reads it, weights from safetensors only.

.. code-block:: python

    pipe = ITryOnPipeline.from_pretrained("exports/itryon")
    out = pipe(video=frames, mask=mask, pose=pose, hand_prior=hands, garment=garment_image,
               caption="a woman in a striped t-shirt", actions=[{"start": 8, "end": 20, "text": "lifts the hem"}],
               num_inference_steps=20, sampler="unipc", text_guidance=3.0, seed=0)
    out.frames  # (B, 3, T, H, W) in [-1, 1], the input's length and size
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import DiffusionPipeline
from diffusers.utils import BaseOutput

from itryon.data.pixels import to_uint8
from itryon.diffusion.sampler import SCHEDULER_SOLVERS, FlowSampler, flow_scheduler
from itryon.inference.components import ITryOnConditioning, ITryOnTextEncoder, ITryOnTransformer, ITryOnVAE
from itryon.inference.generate import generate
from itryon.inference.guidance import guidance_groups

GREY = 128 / 127.5 - 1.0  # the agnostic fill of the synthetic world and of itryon preprocess, in [-1, 1]
# libraries a pipeline folder's model_index.json may name for its components
COMPONENT_LIBRARIES = ("itryon.inference.components", "diffusers", "transformers")


@dataclass
class ITryOnPipelineOutput(BaseOutput):
    """``frames``: ``(B, 3, T, H, W)`` float in [-1, 1] (``output_type="pt"``) or ``(B, T, H, W, 3)`` uint8 (``"np"``)."""

    frames: torch.Tensor | np.ndarray


class ITryOnPipeline(DiffusionPipeline):
    """Interactive video try-on: person video (or agnostic video + mask), pose, hand prior, garment image, captions.

    The settings of the run it comes from travel in its config: how the backbone's output is read (``prediction``,
    ``residual``, ``min_sample_t``), the default steps and guidance, which adapters the overall guidance drops.
    ``denoiser`` is a :class:`~itryon.training.TryOnModule` over the components (shared, not copied).
    """

    model_cpu_offload_seq = "text_encoder->conditioning->transformer->vae"
    _optional_components = ["tokenizer", "text_encoder"]

    def __init__(
        self,
        transformer: ITryOnTransformer,
        vae: ITryOnVAE,
        scheduler: Any,
        conditioning: ITryOnConditioning,
        text_encoder: ITryOnTextEncoder | None = None,
        tokenizer: Any = None,
        text_adapter: str | None = "caption",
        prediction: str = "velocity",
        residual: bool = False,
        min_sample_t: float = 0.05,
        num_train_timesteps: int = 1000,
        num_inference_steps: int = 20,
        guidance_scale: float = 1.0,
        guidance_drop: str | list[str] = "all",
        paste_back: bool = False,
    ) -> None:
        super().__init__()
        self.register_modules(
            transformer=transformer,
            vae=vae,
            scheduler=scheduler,
            conditioning=conditioning,
            text_encoder=text_encoder,
            tokenizer=tokenizer,
        )
        self.register_to_config(
            text_adapter=text_adapter,
            prediction=prediction,
            residual=residual,
            min_sample_t=min_sample_t,
            num_train_timesteps=num_train_timesteps,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            guidance_drop=guidance_drop,
            paste_back=paste_back,
        )
        stack = conditioning.module
        if text_encoder is not None:
            if text_adapter not in stack.adapters:
                raise ValueError(
                    f"text_adapter {text_adapter!r} is not an adapter of the conditioning; it has {sorted(stack.adapters)}"
                )
            stack.adapters[text_adapter].encoder = text_encoder.module
            for adapter in stack.adapters.values():
                adapter.bind(dict(stack.adapters.items()))
        self.denoiser = _denoiser(self)

    # ------------------------------------------------------------------------------------------------
    # loading

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs: Any) -> ITryOnPipeline:
        """Load a pipeline folder; weights load from safetensors only, and the folder's ``model_index.json`` may name
        component classes of itryon, diffusers and transformers only (a folder never runs code it brings)."""
        folder = Path(pretrained_model_name_or_path)
        index = folder / "model_index.json"
        if not index.is_file():
            raise FileNotFoundError(
                f"{folder} is not a pipeline folder: no model_index.json (write one with itryon export)"
            )
        try:
            entries = json.loads(index.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{index}: not valid JSON ({exc})") from None
        for name, value in entries.items():
            if name.startswith("_") or not isinstance(value, list):
                continue
            library = value[0]
            if library is not None and library not in COMPONENT_LIBRARIES:
                raise ValueError(
                    f"{index}: component {name!r} names library {library!r}; a pipeline folder may name "
                    f"{list(COMPONENT_LIBRARIES)} only"
                )
        kwargs.setdefault("use_safetensors", True)
        kwargs.setdefault("low_cpu_mem_usage", False)
        kwargs.setdefault("local_files_only", True)
        return super().from_pretrained(str(folder), **kwargs)

    # ------------------------------------------------------------------------------------------------
    # sampling

    def sampler(self, num_inference_steps: int | None = None, sampler: str | None = None) -> FlowSampler:
        """The flow sampler of the ``scheduler`` component (its config as saved), or of ``sampler`` (``euler``,
        ``unipc``, ``dpm++``) with the scheduler's shift."""
        steps = num_inference_steps or self.config.num_inference_steps
        base = FlowSampler.from_scheduler(self.scheduler, steps, self.config.guidance_scale)
        if sampler is not None and sampler != base.solver:
            return base.replace(solver=sampler)
        return base

    @torch.no_grad()
    def __call__(
        self,
        video: Any = None,
        mask: Any = None,
        pose: Any = None,
        hand_prior: Any = None,
        garment: Any = None,
        caption: str | Sequence[str] = "",
        actions: Sequence[Mapping[str, Any]] | Sequence[Sequence[Mapping[str, Any]]] = (),
        *,
        agnostic: Any = None,
        batch: Mapping[str, Any] | None = None,
        num_frames: int | None = None,
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int | None = None,
        sampler: str | None = None,
        guidance_scale: float | None = None,
        garment_guidance: float = 1.0,
        text_guidance: float = 1.0,
        hand_guidance: float = 1.0,
        window: int | None = None,
        overlap: int = 4,
        normalise_windows: bool = True,
        paste_back: bool | None = None,
        seed: int = 0,
        output_type: str = "pt",
        return_dict: bool = True,
    ) -> ITryOnPipelineOutput | tuple:
        """Generate the try-on video.

        Videos are float ``[3, T, H, W]`` in [-1, 1] (or ``[B, 3, T, H, W]``) or uint8 ``[T, H, W, 3]`` frames; the
        mask ``[1, T, H, W]`` / ``[T, H, W]`` (1 or True where the garment is generated); the garment float
        ``[3, Hg, Wg]``, uint8 ``[Hg, Wg, 3]`` or a PIL image. Give the person ``video`` with its ``mask`` (its
        agnostic video is the frames greyed inside the mask), or ``agnostic`` with ``mask``; or a contract ``batch``
        (:mod:`itryon.data.contract`) instead of all of them. ``actions``: ``{start, end, text}`` frame spans.

        ``num_frames`` keeps the first frames; ``height``/``width`` set the size the model runs at (the output comes
        back at the input's size); ``window``/``overlap`` run long videos in overlapping windows
        (:func:`itryon.inference.generate.generate`). ``guidance_scale`` guides every condition the run's
        ``guidance_drop`` names; ``garment_guidance``, ``text_guidance`` (global + action captions) and
        ``hand_guidance`` guide one group each, all in one batched backbone call per step.
        """
        if batch is None:
            batch = self.make_batch(video, mask, pose, hand_prior, garment, caption, actions, agnostic=agnostic)
        else:
            batch = dict(batch)
        device = self._execution_device
        batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
        if num_frames is not None:
            batch = _first_frames(batch, num_frames)
        if (height is None) != (width is None):
            raise ValueError("give both height and width, or neither")
        model = self.denoiser
        model.eval()
        run_sampler = self.sampler(num_inference_steps, sampler)
        overall = self.config.guidance_scale if guidance_scale is None else guidance_scale
        groups = guidance_groups(
            model.conditioning,
            {"garment": garment_guidance, "text": text_guidance, "hands": hand_guidance},
            overall,
            self.config.guidance_drop,
        )
        frames = generate(
            model,
            batch,
            run_sampler,
            groups,
            seed=seed,
            size=(height, width) if height is not None else None,
            window=window,
            overlap=overlap,
            normalise_windows=normalise_windows,
            paste_back=self.config.paste_back if paste_back is None else paste_back,
        )
        if output_type == "np":
            frames = to_uint8(frames.float()).permute(0, 2, 3, 4, 1).cpu().numpy()  # as itryon writes video files
        elif output_type != "pt":
            raise ValueError(f"output_type must be 'pt' or 'np', got {output_type!r}")
        return ITryOnPipelineOutput(frames=frames) if return_dict else (frames,)

    def make_batch(
        self,
        video: Any = None,
        mask: Any = None,
        pose: Any = None,
        hand_prior: Any = None,
        garment: Any = None,
        caption: str | Sequence[str] = "",
        actions: Sequence[Any] = (),
        *,
        agnostic: Any = None,
    ) -> dict[str, Any]:
        """A contract batch from the call's inputs, with only the keys the adapters read (errors name the input)."""
        if mask is None:
            raise ValueError("mask is required: the region to generate (1 inside), e.g. from itryon preprocess")
        if video is None and agnostic is None:
            raise ValueError("give the person video (with mask) or its agnostic video (with mask)")
        batch: dict[str, Any] = {}
        m = _as_video(mask, "mask", channels=1)
        if video is not None:
            batch["video"] = _as_video(video, "video")
        if agnostic is None:
            agnostic_video = batch["video"] * (1 - m) + GREY * m
        else:
            agnostic_video = _as_video(agnostic, "agnostic")
        b, _, t, h, w = agnostic_video.shape
        if tuple(m.shape[2:]) != (t, h, w):
            raise ValueError(f"mask is {tuple(m.shape[2:])} (T, H, W), the video is {(t, h, w)}")
        batch["agnostic"], batch["agnostic_mask"] = agnostic_video, m.expand(b, -1, -1, -1, -1)
        for key, value in (("pose", pose), ("hand_prior", hand_prior)):
            if value is not None:
                x = _as_video(value, key)
                if tuple(x.shape[2:]) != (t, h, w):
                    raise ValueError(f"{key} is {tuple(x.shape[2:])} (T, H, W), the video is {(t, h, w)}")
                batch[key] = x
        if garment is not None:
            batch["garment"] = _as_image(garment)
        captions = [caption] * b if isinstance(caption, str) else list(caption)
        if actions and isinstance(actions[0], Mapping):
            actions = [list(actions)] * b
        action_lists = [list(a) for a in actions] if actions else [[] for _ in range(b)]
        batch.update(caption=captions, actions=action_lists)
        from itryon.data.contract import interaction_from_actions

        batch["interaction"] = torch.stack([interaction_from_actions(a, t) for a in action_lists])
        missing = sorted(
            {k for a in self.denoiser.conditioning.adapters.values() for k in a.input_keys} - set(batch.keys())
        )
        if missing:
            raise ValueError(f"the model's adapters read {missing}, which the call did not give")
        return batch


# ----------------------------------------------------------------------------------------------------
# helpers


def _denoiser(pipe: ITryOnPipeline) -> Any:
    """A :class:`~itryon.training.TryOnModule` over the pipeline's components (shared, not copied): the one place
    that reads the backbone's output as a velocity."""
    from itryon.diffusion import ActionConstraintLoss, FlowMatching
    from itryon.training.module import TryOnModule

    cfg = pipe.config
    return TryOnModule(
        backbone=pipe.transformer.module,
        conditioning=pipe.conditioning.module,
        vae=pipe.vae.module,
        flow=FlowMatching(num_train_timesteps=cfg.num_train_timesteps),
        loss=ActionConstraintLoss(space="x0" if cfg.prediction == "sample" else "velocity"),  # unused: no training
        prediction=cfg.prediction,
        residual=cfg.residual,
        min_sample_t=cfg.min_sample_t,
        guidance_drop=cfg.guidance_drop,
    ).eval()


def scheduler_for(sampler: FlowSampler) -> Any:
    """The diffusers scheduler a pipeline folder stores for ``sampler`` (its solver, shift and config)."""
    base = flow_scheduler(sampler.solver, sampler.shift, sampler.num_train_timesteps)
    return type(base).from_config(sampler.scheduler_config) if sampler.scheduler_config else base


def _as_video(x: Any, name: str, channels: int = 3) -> torch.Tensor:
    """``(B, C, T, H, W)`` float from float ``[C, T, H, W]``/``[B, C, T, H, W]`` or uint8/bool frames."""
    t = torch.as_tensor(np.asarray(x)) if not torch.is_tensor(x) else x
    if t.dtype == torch.bool:
        t = t.float()
        if t.ndim == 3:
            t = t.unsqueeze(-1)
        t = t.permute(3, 0, 1, 2)
    elif t.dtype == torch.uint8:
        if t.ndim == 3:
            t = t.unsqueeze(-1)
        if t.ndim != 4:
            raise ValueError(f"{name}: uint8 frames must be [T, H, W, C], got shape {tuple(t.shape)}")
        t = t.permute(3, 0, 1, 2).float()
        t = (t > 127).float() if channels == 1 else t / 127.5 - 1.0
    if t.ndim == 4:
        t = t.unsqueeze(0)
    if t.ndim != 5 or t.shape[1] != channels:
        raise ValueError(
            f"{name}: expected float [{channels}, T, H, W] (or [B, {channels}, T, H, W]) or uint8 [T, H, W, "
            f"{channels}] frames, got shape {tuple(t.shape)}"
        )
    return t.float()


def _as_image(x: Any) -> torch.Tensor:
    """``(B, 3, Hg, Wg)`` float from a PIL image, uint8 ``[Hg, Wg, 3]`` or float ``[3, Hg, Wg]``/``[B, 3, Hg, Wg]``."""
    if not torch.is_tensor(x):
        if hasattr(x, "convert"):
            x = x.convert("RGB")
        x = torch.as_tensor(np.asarray(x))
    if x.dtype == torch.uint8:
        if x.ndim != 3 or x.shape[-1] != 3:
            raise ValueError(f"garment: uint8 image must be [Hg, Wg, 3], got shape {tuple(x.shape)}")
        x = x.permute(2, 0, 1).float() / 127.5 - 1.0
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"garment: expected [3, Hg, Wg] float or an RGB image, got shape {tuple(x.shape)}")
    return x.float()


def _first_frames(batch: Mapping[str, Any], num_frames: int) -> dict[str, Any]:
    from itryon.inference.windows import slice_batch

    total = batch["agnostic"].shape[2]
    if not 1 <= num_frames <= total:
        raise ValueError(f"num_frames must lie in [1, {total}] (the video's frames), got {num_frames}")
    return slice_batch(batch, 0, num_frames) if num_frames < total else dict(batch)


__all__ = ["ITryOnPipeline", "ITryOnPipelineOutput", "SCHEDULER_SOLVERS", "scheduler_for"]
