"""Pluggable conditioning adapters and the stack that routes their outputs into the backbone's inputs."""

from itryon.conditioning.base import OUTPUT_KINDS, AdapterOutput, ConditionEnv, ConditioningAdapter
from itryon.conditioning.captions import ActionCaptionAdapter, ActionSlot, GlobalCaptionAdapter, action_slots
from itryon.conditioning.garment import GarmentAdapter
from itryon.conditioning.hand_prior import HandPriorAdapter, InteractionGuider
from itryon.conditioning.person import PersonAdapter
from itryon.conditioning.pose import PoseAdapter
from itryon.conditioning.stack import ConditioningStack, Conditions
from itryon.conditioning.video_encoder import CausalVideoEncoder

__all__ = [
    "OUTPUT_KINDS",
    "ActionCaptionAdapter",
    "ActionSlot",
    "AdapterOutput",
    "CausalVideoEncoder",
    "ConditionEnv",
    "ConditioningAdapter",
    "ConditioningStack",
    "Conditions",
    "GarmentAdapter",
    "GlobalCaptionAdapter",
    "HandPriorAdapter",
    "InteractionGuider",
    "PersonAdapter",
    "PoseAdapter",
    "action_slots",
]
