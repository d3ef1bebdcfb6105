"""Flow-matching schedule, losses (incl. the AC loss) and samplers."""

from itryon.diffusion.flow import FlowMatching
from itryon.diffusion.losses import ActionConstraintLoss
from itryon.diffusion.sampler import EulerSampler

__all__ = ["ActionConstraintLoss", "EulerSampler", "FlowMatching"]
