"""The LightningModule: backbone + conditioning + VAE + flow matching, trained with the AC loss."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from torch import nn

from itryon.cache.lookup import cached_encode
from itryon.data.temporal import frames_to_latent, latent_frame_count
from itryon.diffusion import ActionConstraintLoss, DecodedLoss, EulerSampler, FlowMatching, FlowSampler
from itryon.diffusion.losses import high_noise_weight_ratio
from itryon.models.backbone import Backbone
from itryon.models.lora import add_lora, after_lora
from itryon.training.freezing import FrozenFromFiles, parameter_summary, select_trainable
from itryon.training.optim import OPTIMIZERS, build_optimizer
from itryon.training.parallel import ParallelPlan, check_same_across
from itryon.training.schedule import warmup_cosine
from itryon.training.stream import video_frames, with_stream_references
from itryon.training.weights import load_trained_weights
from itryon.training.wiring import build_backbone

if TYPE_CHECKING:
    from peft import LoraConfig


class TryOnModule(FrozenFromFiles, L.LightningModule):
    """Trains a video DiT to predict flow velocities of the try-on video given the conditioning stack.

    The VAE is frozen; which other parameters train is decided by each part (``requires_grad``), e.g. a
    frozen text encoder inside the conditioning stack. ``validation_step`` returns ``{"loss", "pred"}``
    where ``pred`` is a sampled video ``(B, 3, T, H, W)`` in [-1, 1] on the first ``num_sample_batches`` (None: all)
    batches every ``sample_every_n_epochs`` validation epochs (``None`` otherwise), for the metric and
    sample-video callbacks.

    ``prediction="velocity"`` reads the backbone's output as the flow velocity (Wan2.1); ``"sample"`` reads it
    as the clean latents. Either way the module forms both the velocity ``v_hat`` and the clean sample
    ``x0_hat = x_t - t v_hat`` and the loss measures its error in the space it names (``loss.space``, see
    :mod:`itryon.diffusion.losses` for the weight each choice gives every noise level); the sampler integrates
    velocities, ``(x_t - x0_hat) / max(t, min_sample_t)`` for sample prediction. Sample prediction suits backbones
    whose width is smaller than the values in one patch token (pixel-space latents on the tiny CPU configs): noise
    cannot pass through such a bottleneck, clean content can. ``residual=True`` (sample prediction only) adds the
    conditioning's clean-latent estimate (the person adapter's kept region) to the output, so that a zero-initialised
    head starts at copy-the-input and the backbone learns only what the input lacks.

    ``paste_back=True`` makes :meth:`generate` keep the person video's own pixels outside ``agnostic_mask`` (the
    region the model is asked to generate), as try-on pipelines composite their output; the metrics' copy-the-input
    reference does the same with grey inside.

    ``decoded_loss`` (a :class:`~itryon.diffusion.DecodedLoss`) adds a pixel-space term on the VAE decode of
    ``x0_hat`` (1 - SSIM and L1 of the pasted-back composite) to the latent loss; it needs a VAE whose decode
    passes gradients.

    ``backbone`` is a :class:`~itryon.models.backbone.Backbone` or a factory for one (a ``_partial_`` config entry),
    which the module builds with the channel counts that the VAE and the conditioning imply
    (:func:`itryon.training.wiring.build_backbone`); adapters whose kinds the backbone does not accept fail here.

    ``optimizer="muon"`` trains the backbone blocks' weight matrices with torch's Muon and everything else with AdamW
    (:mod:`itryon.training.optim`), at one learning rate and schedule; ``"adamw"`` trains everything with AdamW.

    ``init_from`` starts from the weights of an earlier run (``weights/model.safetensors`` or a checkpoint),
    as the paper's second stage starts from the first; parameters the file lacks keep their initialisation and
    are listed in ``initialised_fresh``.

    ``lora`` (a ``peft.LoraConfig``) injects LoRA layers into the backbone; its base weights then freeze and the
    LoRA weights train with everything outside the backbone. ``trainable`` (``fnmatch`` patterns over parameter names,
    e.g. ``[backbone.vace_*, conditioning.*]``) trains exactly the parameters it matches, among those their part does
    not freeze (:mod:`itryon.training.freezing`). Frozen tensors loaded from files stay out of checkpoints and
    exports.

    ``parallel`` (:class:`~itryon.training.parallel.ParallelPlan`) says how a ModelParallelStrategy run shards the
    model: FSDP2's mixed-precision policy, HSDP replica groups, context parallelism.

    With classifier-free guidance (``sampler.guidance_scale != 1``) the unconditional
    pass drops the adapters named in ``guidance_drop`` (``"all"``, or e.g. ``[garment, caption, actions]`` to
    keep the person).
    """

    def __init__(
        self,
        backbone: Backbone | Callable[..., Backbone],
        conditioning: nn.Module,
        vae: nn.Module,
        flow: FlowMatching | None = None,
        loss: ActionConstraintLoss | None = None,
        sampler: FlowSampler | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        betas: Sequence[float] = (0.9, 0.999),
        optimizer: Literal["adamw", "muon"] = "adamw",
        warmup_steps: int = 0,
        min_lr_ratio: float = 1.0,
        num_sample_batches: int | None = None,
        sample_every_n_epochs: int = 1,
        sample_seed: int = 0,
        compile_blocks: bool = False,
        guidance_drop: str | list[str] = "all",
        prediction: Literal["velocity", "sample"] = "velocity",
        residual: bool = False,
        paste_back: bool = False,
        min_sample_t: float = 0.05,
        init_from: str | None = None,
        lora: LoraConfig | None = None,
        trainable: list[str] | None = None,
        parallel: ParallelPlan | None = None,
        decoded_loss: DecodedLoss | None = None,
    ) -> None:
        super().__init__()
        vae = vae.requires_grad_(False).eval()
        self.backbone = build_backbone(backbone, conditioning, vae)  # a _partial_ config gets its channel counts here
        self.conditioning = conditioning
        self.vae = vae
        self.flow = flow or FlowMatching()
        self.loss_fn = loss or ActionConstraintLoss()
        self.decoded_loss = decoded_loss
        self.sampler = sampler or EulerSampler()
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
        self.lr, self.weight_decay, self.betas, self.optimizer_name = lr, weight_decay, tuple(betas), optimizer
        self.warmup_steps, self.min_lr_ratio = warmup_steps, min_lr_ratio
        self.num_sample_batches = num_sample_batches
        self.sample_every_n_epochs = sample_every_n_epochs
        self.sample_seed = sample_seed
        self.compile_blocks = compile_blocks
        self.flops_per_batch: int | None = None  # backbone FLOPs of the last batch (ThroughputMonitor); None: unknown
        self._forward_flops: int | None = 0  # backbone forward FLOPs since the batch began
        self.guidance_drop = guidance_drop if isinstance(guidance_drop, str) else list(guidance_drop)
        if prediction not in ("velocity", "sample"):
            raise ValueError(f"prediction must be 'velocity' or 'sample', got {prediction!r}")
        if residual and prediction != "sample":
            raise ValueError("residual=True adds an estimate of the clean latents: it needs prediction='sample'")
        self.prediction = prediction
        self.residual = residual
        self.paste_back = paste_back
        self.min_sample_t = min_sample_t
        ratio = high_noise_weight_ratio(self.flow, self.loss_fn, prediction)
        if ratio < 0.25:
            rank_zero_warn(
                f"the objective (prediction={prediction!r}, loss.space={self.loss_fn.space!r}, loss.weighting="
                f"{self.loss_fn.weighting!r}, flow.timestep_sampling={self.flow.timestep_sampling!r}) gives the high-noise "
                f"end t >= 0.9, where sampling starts, {ratio:.2f}x the mean loss weight; sample prediction usually "
                "wants loss.space=x0 (itryon.diffusion.losses)"
            )
        self.conditioning.check_backbone(self.backbone)
        # weights of an earlier run (e.g. training stage 1); parts it lacks, such as new adapters, stay as built
        self.initialised_fresh = load_trained_weights(self, init_from, allow_missing=True) if init_from else []
        fresh = set(self.initialised_fresh)
        self.loaded_sources = {k: str(init_from) for k in self.state_dict() if init_from and k not in fresh}
        if lora is not None:
            add_lora(self.backbone, lora)
            self.loaded_sources = {
                new: self.loaded_sources[old]
                for old, new in after_lora(self.loaded_sources, self.backbone, "backbone.").items()
            }
        select_trainable(self, trainable, lora=lora is not None)
        self.parallel = parallel or ParallelPlan()
        self._context_parallel = None  # set by configure_model under context parallelism
        self.strict_loading = False  # checkpoints leave out frozen tensors loaded from files (FrozenFromFiles)

    # ------------------------------------------------------------------------------------------------
    # wiring

    def configure_model(self) -> None:
        """The backbone's parallelisation plan (compiled blocks with ``compile_blocks``; under a ModelParallelStrategy
        context parallelism and FSDP2 as ``parallel`` says), then FSDP2 for the other trainable parts."""
        from itryon.training.parallel import shard_parts

        rank_zero_info("trained and frozen parameters:\n" + parameter_summary(self))
        mesh, context = self.parallel.meshes(self.device_mesh)
        if mesh is not None and self._trainer is not None:
            self.parallel.check_precision(self._trainer.precision)
        if context is not None:
            self.backbone.enable_context_parallel(context)
            self._context_parallel = context
        fsdp = self.parallel.fsdp_kwargs() if mesh is not None else {}
        self.backbone.parallelize(mesh, compile=self.compile_blocks, **fsdp)
        if mesh is not None:
            shard_parts(self, mesh, skip=("backbone", "vae"), **fsdp)

    @property
    def scores_its_batches(self) -> bool:
        """Whether metrics count this rank's batches: the ranks of a context-parallel group share each batch, so
        only the group's first counts it (validation never counts a clip twice)."""
        return self._context_parallel is None or self._context_parallel.rank == 0

    def generation_region(self, batch: Mapping[str, Any], latent_shape: tuple[int, ...]) -> torch.Tensor:
        """``agnostic_mask`` ``(B, 1, T, H, W)`` max-pooled onto the latent grid ``(B, 1, F, h, w)``: latent pixels
        that hold any pixel to generate."""
        mask = batch["agnostic_mask"].float()
        b, _, t, h, w = mask.shape
        sc = int(self.vae.spatial_compression)
        pooled = F.max_pool3d(mask, kernel_size=(1, sc, sc))  # (B, 1, T, h', w')
        frames = frames_to_latent(pooled.permute(0, 1, 3, 4, 2), int(self.vae.temporal_compression))
        region = frames.permute(0, 1, 4, 2, 3)  # (B, 1, F, h', w')
        if tuple(region.shape[2:]) != tuple(latent_shape[2:]):
            raise ValueError(
                f"agnostic_mask pools to {tuple(region.shape[2:])}, the latents are {tuple(latent_shape[2:])}"
            )
        return region

    def latent_shape(self, video: torch.Tensor) -> tuple[int, int, int, int, int]:
        """Latent shape ``(B, C, F, h, w)`` the VAE gives for ``video`` ``(B, 3, T, H, W)``."""
        b, _, t, h, w = video.shape
        sc = int(self.vae.spatial_compression)
        frames = latent_frame_count(t, int(self.vae.temporal_compression))
        return (b, int(self.vae.latent_channels), frames, h // sc, w // sc)

    def predict(
        self, x_t: torch.Tensor, t: torch.Tensor, cond: Any, min_t: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(v_hat, x0_hat)`` for noisy latents ``(B, C, F, h, w)`` at flow times ``t`` ``(B,)`` in (0, 1].

        For sample prediction the velocity divides by ``max(t, min_t)``.
        """
        out = self.backbone(x_t, self.flow.model_timestep(t), cond.inputs)
        self._count_flops(x_t.shape, cond)
        t_b = t.view(-1, *([1] * (x_t.ndim - 1))).to(x_t.dtype)
        if self.prediction == "velocity":
            return out, x_t - t_b * out
        if self.residual:
            if cond.estimate is None:
                raise ValueError(
                    "residual=True needs a clean-latent estimate from the conditioning (the PersonAdapter gives one); "
                    "no adapter gave it"
                )
            out = out + with_stream_references(cond.estimate, cond.inputs).to(out.dtype)
        return (x_t - out) / t_b.clamp_min(min_t), out

    def predict_velocity(self, x_t: torch.Tensor, timestep: torch.Tensor, cond: Any) -> torch.Tensor:
        """Backbone velocity for noisy latents ``(B, C, F, h, w)`` and model timesteps ``(B,)`` in [0, 1000] (the
        sampler's view: sample predictions divide by ``max(t, min_sample_t)``)."""
        t = timestep / self.flow.num_train_timesteps
        return self.predict(x_t, t, cond, min_t=self.min_sample_t)[0]

    @property
    def batch_share(self) -> float:
        """This rank's share of each batch's work: ``1 / degree`` in a context-parallel group, else 1."""
        return 1.0 if self._context_parallel is None else 1.0 / self._context_parallel.degree

    def _count_flops(self, latent_shape: torch.Size, cond: Any) -> None:
        flops = self.backbone.flops(latent_shape, cond.inputs)
        flops = None if flops is None else flops * self.batch_share  # this rank's slice of the sequence
        self._forward_flops = None if flops is None or self._forward_flops is None else self._forward_flops + int(flops)

    def _batch_flops(self, factor: int) -> None:
        """Record the batch's backbone FLOPs (``factor`` 3: forward and backward) and start counting the next."""
        self.flops_per_batch = None if self._forward_flops is None else factor * self._forward_flops
        self._forward_flops = 0

    # ------------------------------------------------------------------------------------------------
    # training

    def diffusion_loss(
        self, batch: Mapping[str, Any], generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        video = batch["video"]  # (B, 3, T, H, W)
        with torch.no_grad():
            x0 = cached_encode(self.vae, video)  # (B, C, F, h, w), from the latent cache when one is attached
        cond = self.conditioning(batch, vae=self.vae, latent_shape=tuple(x0.shape))
        stream = with_stream_references(x0, cond.inputs)  # (B, C, R + F, h, w) with Wan-VACE's reference frames
        noise = torch.randn(stream.shape, generator=generator, device=x0.device, dtype=x0.dtype)
        t = self.flow.sample_t(x0.shape[0], device=x0.device, generator=generator)
        x_t = self.flow.interpolate(stream, noise, t)
        if self._context_parallel is not None and self.training:
            check_same_across((x_t, t), self._context_parallel, "noisy latents or times")
        v_hat, x0_hat = (video_frames(z, cond.inputs) for z in self.predict(x_t, t, cond))  # scored: video frames
        noise = video_frames(noise, cond.inputs)
        mask = None
        if self.loss_fn.ac_weight > 0:
            mask = self.loss_fn.action_mask(
                batch["interaction"], x0.shape, int(self.vae.temporal_compression), batch.get("interaction_mask")
            )
        region = self.generation_region(batch, x0.shape) if self.loss_fn.outside_weight != 1.0 else None
        if self.loss_fn.space == "x0":
            out = self.loss_fn(x0_hat, x0, mask, t=t, region=region)
        else:
            out = self.loss_fn(v_hat, self.flow.velocity(x0, noise), mask, t=t, region=region)
        if self.decoded_loss is None:
            return out
        decoded = self.vae.decode(x0_hat)
        if torch.is_grad_enabled() and x0_hat.requires_grad and not decoded.requires_grad:
            raise ValueError(
                f"model.decoded_loss needs a VAE whose decode passes gradients (LinearVAE, PixelVAE); "
                f"{type(self.vae).__name__} decodes without them"
            )
        term = self.decoded_loss(decoded, video, batch.get("agnostic_mask"))
        return {**out, "loss": out["loss"] + term, "decoded": term}

    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor:
        self._forward_flops = 0
        out = self.diffusion_loss(batch)
        self._batch_flops(3)  # a training step's backward costs twice its forward
        bs = batch["video"].shape[0]
        self.log("train/loss", out["loss"], prog_bar=True, batch_size=bs)
        self.log_dict({"train/flow_loss": out["flow"], "train/ac_loss": out["ac"]}, batch_size=bs)
        if "decoded" in out:
            self.log("train/decoded_loss", out["decoded"], batch_size=bs)
        return out["loss"]

    def validation_step(self, batch: Mapping[str, Any] | None, batch_idx: int) -> dict[str, Any] | None:
        if batch is None:  # every clip of this batch was skipped and reported by the data module
            return None
        self._forward_flops = 0
        # fixed noise and times per batch so that validation losses are comparable across epochs
        gen = torch.Generator(device=batch["video"].device).manual_seed(self.sample_seed + batch_idx)
        out = self.diffusion_loss(batch, generator=gen)
        bs = batch["video"].shape[0]
        self.log("val/loss", out["loss"], prog_bar=True, batch_size=bs, sync_dist=True)
        self.log("val/flow_loss", out["flow"], batch_size=bs, sync_dist=True)
        pred = None
        if self.should_sample(batch_idx):
            pred = self.generate(batch, seed=self.sample_seed + batch_idx)
        self._batch_flops(1)  # the loss's forward pass and the sampler's
        return {"loss": out["loss"], "pred": pred}

    def should_sample(self, batch_idx: int) -> bool:
        if self.num_sample_batches is not None and batch_idx >= self.num_sample_batches:
            return False
        trainer = self._trainer
        if trainer is None:
            return True
        if trainer.sanity_checking:
            return False
        return (
            (self.current_epoch + 1) % max(1, self.sample_every_n_epochs) == 0
            or trainer.should_stop
            or (trainer.max_steps > 0 and self.global_step >= trainer.max_steps)
        )

    @torch.no_grad()
    def generate(
        self,
        batch: Mapping[str, Any],
        num_steps: int | None = None,
        guidance_scale: float | None = None,
        seed: int = 0,
        sampler: FlowSampler | None = None,
        guidance: Mapping[str, float] | None = None,
        paste_back: bool | None = None,
    ) -> torch.Tensor:
        """Sample the try-on video ``(B, 3, T, H, W)`` in [-1, 1] for the conditions in ``batch``
        (:func:`itryon.inference.sampling.sample_video`).

        ``sampler`` replaces the module's; ``guidance`` gives per-condition scales (``garment``, ``text``, ``hands``,
        :mod:`itryon.inference.guidance`) beside the overall ``guidance_scale`` over ``guidance_drop``.
        """
        from itryon.inference.guidance import guidance_groups
        from itryon.inference.sampling import sample_video

        sampler = (sampler or self.sampler).replace(num_steps=num_steps, guidance_scale=guidance_scale)
        groups = guidance_groups(self.conditioning, guidance, sampler.guidance_scale, self.guidance_drop)
        was_training = self.training
        self.eval()
        try:
            return sample_video(
                self, batch, sampler, groups, seed, self.paste_back if paste_back is None else paste_back
            )
        finally:
            self.train(was_training)

    # ------------------------------------------------------------------------------------------------
    # optimisation

    def configure_optimizers(self) -> dict[str, Any]:
        params = [p for p in self.parameters() if p.requires_grad]
        if not params:
            raise ValueError("no trainable parameters: every part of the model is frozen")
        optimizer = build_optimizer(
            self.optimizer_name, params, self.backbone.transformer_blocks(), self.lr, self.betas, self.weight_decay
        )
        total = self._trainer.estimated_stepping_batches if self._trainer is not None else 0
        total = int(total) if math.isfinite(total) else 0
        scheduler = warmup_cosine(optimizer, self.warmup_steps, total, self.min_lr_ratio)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
