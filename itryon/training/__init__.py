"""The LightningModule and run management (may import every other itryon package)."""

from itryon.training.module import TryOnModule

__all__ = ["TryOnModule"]
