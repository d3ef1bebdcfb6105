"""Text encoders with one interface: ``encoder(texts) -> (embeddings (B, L, dim), mask (B, L) bool)``.

Both follow Wan's convention: every caption is padded to ``max_length`` tokens and the embeddings of
positions beyond its real length are exactly zero (the DiT attends the zero padding, as Wan does).

* ``ByteTextEncoder``: a small trainable byte-level transformer for CPU runs (no tokenizer files).
* ``T5TextEncoder``: a frozen UMT5/T5 encoder and its tokenizer from a local folder (Wan uses umt5-xxl).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from itryon.models.precision import DTypeName, as_dtype

_PAD = 0
_EOS = 1
_BYTE_OFFSET = 2  # byte b -> token id b + 2


class ByteTextEncoder(nn.Module):
    """UTF-8 bytes -> a pre-norm transformer encoder; an end token makes even the empty caption one token long."""

    def __init__(
        self,
        dim: int,
        max_length: int = 64,
        num_layers: int = 2,
        num_heads: int = 4,
        ffn_mult: int = 4,
        dropout: float = 0.0,
    ):
        super().__init__()
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        self.dim = dim
        self.max_length = max_length
        self.token_embedding = nn.Embedding(256 + _BYTE_OFFSET, dim, padding_idx=_PAD)
        self.position_embedding = nn.Parameter(torch.randn(max_length, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(
            dim,
            num_heads,
            dim_feedforward=ffn_mult * dim,
            dropout=dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)

    def tokenize(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, max_length)`` long ids and bool mask; bytes beyond ``max_length - 1`` are truncated."""
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, got a single str")
        ids = torch.full((len(texts), self.max_length), _PAD, dtype=torch.long)
        for row, text in enumerate(texts):
            data = list(text.encode("utf-8"))[: self.max_length - 1]
            ids[row, : len(data)] = torch.tensor(data, dtype=torch.long) + _BYTE_OFFSET
            ids[row, len(data)] = _EOS
        return ids, ids != _PAD

    def forward(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = self.tokenize(texts)
        device = self.position_embedding.device
        ids, mask = ids.to(device), mask.to(device)
        x = self.token_embedding(ids) + self.position_embedding  # (B, L, dim)
        x = self.encoder(x, src_key_padding_mask=~mask)
        x = self.norm(x) * mask.unsqueeze(-1).to(x.dtype)
        return x, mask


def _subfolder(path: Path, name: str, marker: str) -> Path:
    if (path / name / marker).is_file():
        return path / name
    if (path / marker).is_file():
        return path
    raise FileNotFoundError(f"no {marker} in {path / name} or {path}; expected a local {name} folder")


class T5TextEncoder(nn.Module):
    """Frozen (U)MT5/T5 encoder + tokenizer from a local folder (a Wan pipeline folder or a plain model folder).

    The folder holds ``text_encoder/`` and ``tokenizer/`` subfolders (diffusers Wan layout) or both directly.
    ``dtype`` (a name such as ``bfloat16`` or a ``torch.dtype``) is the precision of the frozen weights; embeddings
    come back in it.
    """

    def __init__(self, path: str | Path, max_length: int = 512, *, dtype: DTypeName | torch.dtype = "float32"):
        super().__init__()
        from transformers import AutoTokenizer, T5EncoderModel, UMT5EncoderModel

        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"text encoder folder {path} does not exist")
        model_dir = _subfolder(path, "text_encoder", "config.json")
        tokenizer_dir = _subfolder(path, "tokenizer", "tokenizer_config.json")
        self.tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True)
        model_type = json.loads((model_dir / "config.json").read_text()).get("model_type")
        model_cls = {"umt5": UMT5EncoderModel, "t5": T5EncoderModel, "mt5": T5EncoderModel}.get(model_type)
        if model_cls is None:
            raise ValueError(f"{model_dir / 'config.json'}: model_type {model_type!r} is not one of umt5, t5, mt5")
        self.encoder = model_cls.from_pretrained(
            str(model_dir), torch_dtype=as_dtype(dtype, "T5TextEncoder dtype"), local_files_only=True
        )
        self.source = str(path)  # where the frozen weights come from (listed by the weights export)
        self.encoder.eval().requires_grad_(False)
        self.max_length = max_length
        self.dim = int(self.encoder.config.d_model)

    def train(self, mode: bool = True) -> T5TextEncoder:
        super().train(mode)
        self.encoder.eval()  # frozen: dropout stays off
        return self

    @torch.no_grad()
    def forward(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(texts, str):
            raise TypeError("texts must be a list of strings, got a single str")
        tokens = self.tokenizer(
            list(texts),
            padding="max_length",
            max_length=self.max_length,
            truncation=True,
            add_special_tokens=True,
            return_attention_mask=True,
            return_tensors="pt",
        )
        device = next(self.encoder.parameters()).device
        ids = tokens.input_ids.to(device)
        mask = tokens.attention_mask.to(device).bool()
        hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, L, dim)
        return hidden * mask.unsqueeze(-1).to(hidden.dtype), mask
