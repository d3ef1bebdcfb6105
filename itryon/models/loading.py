"""Loading WanDiT weights from a local folder: diffusers layout or the original Wan2.1 repository layout.

* diffusers: ``config.json`` (``_class_name`` ``WanTransformer3DModel`` / ``WanVACETransformer3DModel``) and
  ``diffusion_pytorch_model.safetensors`` or shards listed in ``diffusion_pytorch_model.safetensors.index.json``;
  a pipeline folder with a ``transformer/`` subfolder works too.
* original Wan2.1: ``config.json`` (``_class_name`` ``WanModel`` / ``VaceWanModel``, keys ``dim``, ``in_dim``, ...)
  and the same safetensors naming.

Parameter names are converted to WanDiT's (which follow the original Wan names). Nothing is downloaded.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
INDEX_NAME = "diffusion_pytorch_model.safetensors.index.json"

# (pattern, replacement) applied in order to every diffusers key
_DIFFUSERS_TO_NATIVE = [
    (r"^condition_embedder\.time_embedder\.linear_1\.", "time_embedding.0."),
    (r"^condition_embedder\.time_embedder\.linear_2\.", "time_embedding.2."),
    (r"^condition_embedder\.time_proj\.", "time_projection.1."),
    (r"^condition_embedder\.text_embedder\.linear_1\.", "text_embedding.0."),
    (r"^condition_embedder\.text_embedder\.linear_2\.", "text_embedding.2."),
    (r"^scale_shift_table$", "head.modulation"),
    (r"^proj_out\.", "head.proj."),
    (r"\.attn1\.", ".self_attn."),
    (r"\.attn2\.", ".cross_attn."),
    (r"\.to_q\.", ".q."),
    (r"\.to_k\.", ".k."),
    (r"\.to_v\.", ".v."),
    (r"\.to_out\.0\.", ".o."),
    (r"\.norm2\.", ".cross_norm."),
    (r"\.ffn\.net\.0\.proj\.", ".ffn.0."),
    (r"\.ffn\.net\.2\.", ".ffn.2."),
    (r"^(blocks|vace_blocks)\.(\d+)\.scale_shift_table$", r"\1.\2.modulation"),
    (r"^vace_blocks\.(\d+)\.proj_in\.", r"vace_blocks.\1.before_proj."),
    (r"^vace_blocks\.(\d+)\.proj_out\.", r"vace_blocks.\1.after_proj."),
]
# WanDiT -> diffusers, the inverse of the rules above (for DiffusersWanVACE and for writing diffusers checkpoints)
_NATIVE_TO_DIFFUSERS = [
    (r"^time_embedding\.0\.", "condition_embedder.time_embedder.linear_1."),
    (r"^time_embedding\.2\.", "condition_embedder.time_embedder.linear_2."),
    (r"^time_projection\.1\.", "condition_embedder.time_proj."),
    (r"^text_embedding\.0\.", "condition_embedder.text_embedder.linear_1."),
    (r"^text_embedding\.2\.", "condition_embedder.text_embedder.linear_2."),
    (r"^head\.modulation$", "scale_shift_table"),
    (r"^head\.proj\.", "proj_out."),
    (r"^(blocks|vace_blocks)\.(\d+)\.modulation$", r"\1.\2.scale_shift_table"),
    (r"^vace_blocks\.(\d+)\.before_proj\.", r"vace_blocks.\1.proj_in."),
    (r"^vace_blocks\.(\d+)\.after_proj\.", r"vace_blocks.\1.proj_out."),
    (r"\.self_attn\.", ".attn1."),
    (r"\.cross_attn\.", ".attn2."),
    (r"\.q\.", ".to_q."),
    (r"\.k\.", ".to_k."),
    (r"\.v\.", ".to_v."),
    (r"\.o\.", ".to_out.0."),
    (r"\.cross_norm\.", ".norm2."),
    (r"\.ffn\.0\.", ".ffn.net.0.proj."),
    (r"\.ffn\.2\.", ".ffn.net.2."),
]
# the original repository's names are WanDiT's, except these
_ORIGINAL_TO_NATIVE = [
    (r"^model\.diffusion_model\.", ""),
    (r"\.norm3\.", ".cross_norm."),
    (r"^head\.head\.", "head.proj."),
]
_UNSUPPORTED_PREFIXES = ("img_emb.", "condition_embedder.image_embedder.", "motion_encoder.", "face_adapter.")
# parameters WanDiT adds on top of a Wan checkpoint (``zero_init_gates``): zero-initialised when the checkpoint lacks them
_NEW_PARAMETERS = re.compile(r"^(blocks|vace_blocks)\.\d+\.(self_attn|cross_attn)\.gate$")

logger = logging.getLogger(__name__)


def _rename(key: str, rules: list[tuple[str, str]]) -> str:
    for pattern, replacement in rules:
        key = re.sub(pattern, replacement, key)
    return key


def resolve_folder(path: Path) -> Path:
    if not path.exists():
        raise FileNotFoundError(f"checkpoint folder {path} does not exist")
    if (path / "config.json").is_file():
        return path
    if (path / "transformer" / "config.json").is_file():
        return path / "transformer"
    raise FileNotFoundError(f"no config.json in {path} (nor in {path / 'transformer'}); expected a Wan2.1 model folder")


def read_checkpoint_config(path: str | Path) -> tuple[dict[str, Any], str]:
    """WanDiT keyword arguments and the layout name (``"diffusers"`` or ``"original"``) of a checkpoint folder."""
    folder = resolve_folder(Path(path))
    raw = json.loads((folder / "config.json").read_text())
    class_name = raw.get("_class_name", "")
    if class_name in ("WanTransformer3DModel", "WanVACETransformer3DModel") or "num_attention_heads" in raw:
        for key in ("image_dim", "added_kv_proj_dim", "pos_embed_seq_len"):
            if raw.get(key) is not None:
                raise ValueError(f"{folder / 'config.json'}: {key}={raw[key]} (image-conditioned Wan) is not supported")
        config = dict(
            in_channels=raw.get("in_channels", 16),
            out_channels=raw.get("out_channels") or raw.get("in_channels", 16),
            patch_size=tuple(raw.get("patch_size", (1, 2, 2))),
            dim=raw["num_attention_heads"] * raw["attention_head_dim"],
            ffn_dim=raw["ffn_dim"],
            num_layers=raw["num_layers"],
            num_heads=raw["num_attention_heads"],
            text_dim=raw.get("text_dim", 4096),
            freq_dim=raw.get("freq_dim", 256),
            eps=raw.get("eps", 1e-6),
            cross_attn_norm=raw.get("cross_attn_norm", True),
            rope_max_seq_len=raw.get("rope_max_seq_len", 1024),
        )
        if class_name == "WanVACETransformer3DModel" or "vace_layers" in raw:
            config["vace_layers"] = list(raw.get("vace_layers", [0, 5, 10, 15, 20, 25, 30, 35]))
            config["vace_in_channels"] = raw.get("vace_in_channels", 96)
        return config, "diffusers"
    if "dim" in raw and "num_heads" in raw:
        model_type = raw.get("model_type", "t2v")
        if model_type not in ("t2v", "vace"):
            raise ValueError(f"{folder / 'config.json'}: model_type {model_type!r} is not supported (t2v, vace)")
        config = dict(
            in_channels=raw.get("in_dim", 16),
            out_channels=raw.get("out_dim", 16),
            patch_size=tuple(raw.get("patch_size", (1, 2, 2))),
            dim=raw["dim"],
            ffn_dim=raw["ffn_dim"],
            num_layers=raw["num_layers"],
            num_heads=raw["num_heads"],
            text_dim=raw.get("text_dim", 4096),
            freq_dim=raw.get("freq_dim", 256),
            eps=raw.get("eps", 1e-6),
            cross_attn_norm=raw.get("cross_attn_norm", True),
        )
        if model_type == "vace" or class_name == "VaceWanModel" or raw.get("vace_layers") is not None:
            config["vace_layers"] = list(raw.get("vace_layers") or range(0, raw["num_layers"], 2))
            config["vace_in_channels"] = raw.get("vace_in_dim") or raw.get("in_dim", 16)
        return config, "original"
    raise ValueError(
        f"{folder / 'config.json'}: not a Wan2.1 config (expected diffusers keys like 'num_attention_heads' "
        f"or original keys like 'dim'/'num_heads'), found keys {sorted(raw)}"
    )


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a (possibly sharded) safetensors checkpoint folder, names as stored."""
    folder = resolve_folder(Path(path))
    index = folder / INDEX_NAME
    if index.is_file():
        weight_map = json.loads(index.read_text()).get("weight_map")
        if not isinstance(weight_map, dict):
            raise ValueError(f"{index}: expected a 'weight_map' object")
        files = sorted(set(weight_map.values()))
    elif (folder / WEIGHTS_NAME).is_file():
        files = [WEIGHTS_NAME]
    else:
        found = sorted(p.name for p in folder.glob("*.safetensors"))
        if len(found) == 1:
            files = found
        else:
            raise FileNotFoundError(
                f"no weights in {folder}: expected {WEIGHTS_NAME} or {INDEX_NAME}, found safetensors {found}"
            )
    state: dict[str, torch.Tensor] = {}
    for name in files:
        shard = folder / name
        if not shard.is_file():
            raise FileNotFoundError(f"checkpoint shard {shard} listed in {index.name} is missing")
        state.update(load_file(str(shard)))
    return state


def to_native_names(state: dict[str, torch.Tensor], layout: str) -> dict[str, torch.Tensor]:
    """Rename a diffusers- or original-layout state dict to WanDiT parameter names."""
    rules = {"diffusers": _DIFFUSERS_TO_NATIVE, "original": _ORIGINAL_TO_NATIVE}
    if layout not in rules:
        raise ValueError(f"layout must be one of {sorted(rules)}, got {layout!r}")
    out = {}
    for key, value in state.items():
        if key.startswith(_UNSUPPORTED_PREFIXES):
            raise ValueError(f"checkpoint tensor {key!r} belongs to an image-conditioned Wan variant (not supported)")
        if key.endswith("norm_added_q.weight"):
            continue
        out[_rename(key, rules[layout])] = value
    return out


def to_diffusers_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a WanDiT state dict to diffusers' ``WanTransformer3DModel`` / ``WanVACETransformer3DModel`` names.

    The zero-initialised attention gates and a cross-attention rotary module have no diffusers counterpart: a state
    that holds them is an error naming them.
    """
    foreign = sorted(k for k in state if _NEW_PARAMETERS.match(k) or k.startswith("cross_attention_rope."))
    if foreign:
        raise ValueError(f"tensors {foreign[:4]}{' ...' if len(foreign) > 4 else ''} have no diffusers counterpart")
    return {_rename(key, _NATIVE_TO_DIFFUSERS): value for key, value in state.items()}


def load_native_state(
    model: torch.nn.Module,
    state: dict[str, torch.Tensor],
    *,
    extra_in_channels: int = 0,
    dtype: torch.dtype | None = torch.float32,
) -> list[str]:
    """Put ``state`` into ``model`` (which may live on the meta device); fail naming every missing/unexpected
    tensor and any shape mismatch. Tensors are cast to ``dtype`` (None keeps the checkpoint's).

    With ``extra_in_channels`` the patch embedding's pretrained input channels are kept and the extra ones zeroed.
    The attention gates of ``zero_init_gates`` that ``state`` lacks are set to zero; returns their names (the newly
    initialised parameters), also logged at INFO level.
    """
    # a pluggable cross-attention rotary module is not part of Wan checkpoints; it keeps its own state
    own = {k: v for k, v in model.state_dict().items() if not k.startswith("cross_attention_rope.")}
    new = sorted(k for k in set(own) - set(state) if _NEW_PARAMETERS.match(k))
    missing = sorted(set(own) - set(state) - set(new))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        raise KeyError(f"checkpoint does not match WanDiT: missing tensors {missing}, unexpected tensors {unexpected}")
    ready = {}
    for key, value in state.items():
        target = own[key]
        value = value.to(dtype) if dtype is not None else value
        if key == "patch_embedding.weight" and extra_in_channels:
            expected = (target.shape[0], target.shape[1] - extra_in_channels, *target.shape[2:])
            if tuple(value.shape) != expected:
                raise ValueError(f"tensor {key!r}: checkpoint shape {tuple(value.shape)}, expected {expected}")
            padded = value.new_zeros(target.shape)
            padded[:, : value.shape[1]] = value
            value = padded
        elif value.shape != target.shape:
            raise ValueError(
                f"tensor {key!r}: checkpoint shape {tuple(value.shape)} does not match the model's {tuple(target.shape)}"
            )
        ready[key] = value.contiguous()
    if new:
        new_dtype = dtype if dtype is not None else next(iter(state.values())).dtype
        for key in new:
            ready[key] = torch.zeros(own[key].shape, dtype=new_dtype)
        logger.info("newly initialised (zero) parameters not in the checkpoint: %s", new)
    model.load_state_dict(ready, strict=False, assign=True)
    return new


def _normalise(value: Any) -> Any:
    return [_normalise(v) for v in value] if isinstance(value, (list, tuple)) else value


def load_wan_dit(
    cls,
    path: str | Path,
    *,
    in_channels: int | None = None,
    dtype: str | torch.dtype | None = torch.float32,
    **overrides,
):
    """Build ``cls`` from a checkpoint folder's config (plus ``overrides``) and load its weights.

    ``in_channels`` beyond the checkpoint's are new, zero-initialised patch-embedding input channels. The model is
    built on the meta device and takes the loaded tensors (no random initialisation of billions of parameters that
    are overwritten anyway).
    """
    from itryon.models.precision import as_dtype

    dtype = None if dtype is None else as_dtype(dtype, "WanDiT.from_pretrained dtype")
    config, layout = read_checkpoint_config(path)
    # rope_max_seq_len only bounds positions; every other architecture key must agree with the weights
    changed = sorted(
        k
        for k in set(config) & set(overrides) - {"rope_max_seq_len"}
        if _normalise(overrides[k]) != _normalise(config[k])
    )
    if changed:
        raise ValueError(
            f"{path}: {', '.join(f'{k}={overrides[k]}' for k in changed)} differ from the checkpoint's architecture "
            f"({', '.join(f'{k}={config[k]}' for k in changed)}); only in_channels may grow (new input channels)"
        )
    config.update(overrides)
    extra_in_channels = 0 if in_channels is None else int(in_channels) - config["in_channels"]
    if extra_in_channels < 0:
        raise ValueError(f"{path}: in_channels={in_channels} is fewer than the checkpoint's {config['in_channels']}")
    config["in_channels"] = config["in_channels"] + extra_in_channels
    state = to_native_names(read_state_dict(path), layout)
    with torch.device("meta"):
        model = cls(**config)
    load_native_state(model, state, extra_in_channels=extra_in_channels, dtype=dtype)
    model.source = str(path)  # where its weights come from (the export lists it for the tensors that stay frozen)
    return model
