"""Flow-matching schedule, losses (incl. the AC loss) and samplers."""

from itryon.diffusion.flow import FlowMatching
from itryon.diffusion.losses import ActionConstraintLoss, DecodedLoss
from itryon.diffusion.sampler import SOLVERS, EulerSampler, FlowSampler, flow_scheduler

__all__ = [
    "SOLVERS",
    "ActionConstraintLoss",
    "DecodedLoss",
    "EulerSampler",
    "FlowMatching",
    "FlowSampler",
    "flow_scheduler",
]
