"""Agnostic masks per garment category, the hand prior from keypoints, the pose render of estimated joints."""

from __future__ import annotations

import numpy as np
import pytest
from preprocess_helpers import FixedHands, FixedPose, open_hand

from itryon.data.synthetic.actions import GRASP, OPEN, PINCH
from itryon.data.synthetic.hands import NO_HAND
from itryon.data.synthetic.skeleton import POSE_COLOURS, POSE_LIMBS, draw_pose
from itryon.preprocess.agnostic import agnostic_mask
from itryon.preprocess.hand_prior import grip_of, hand_positions, render_hand_prior
from itryon.preprocess.types import BodyPose, HandPose, J, Segmentation

H, W = 120, 80
STANDING = {  # a person facing the camera, fractions of the frame
    "head": (0.5, 0.1),
    "neck": (0.5, 0.2),
    "r_shoulder": (0.35, 0.24),
    "l_shoulder": (0.65, 0.24),
    "r_elbow": (0.3, 0.38),
    "l_elbow": (0.7, 0.38),
    "r_wrist": (0.3, 0.5),
    "l_wrist": (0.7, 0.5),
    "r_hand": (0.3, 0.53),
    "l_hand": (0.7, 0.53),
    "r_hip": (0.42, 0.55),
    "l_hip": (0.58, 0.55),
    "r_knee": (0.42, 0.75),
    "l_knee": (0.58, 0.75),
    "r_ankle": (0.42, 0.95),
    "l_ankle": (0.58, 0.95),
}


def person(frames: int = 1) -> Segmentation:
    mask = np.zeros((frames, H, W), np.float32)
    mask[:, 2:118, 16:64] = 1.0  # the person's silhouette, wider than the body's joints
    return Segmentation(mask)


def region(box) -> tuple[slice, slice]:
    x0, y0, x1, y1 = box
    return slice(int(y0 * H), int(y1 * H)), slice(int(x0 * W), int(x1 * W))


@pytest.mark.parametrize("category", ["upper", "lower", "dress"])
def test_each_category_masks_its_garment_region(category: str) -> None:
    frames = np.zeros((1, H, W, 3), np.uint8)
    pose = FixedPose(STANDING).estimate(frames)
    mask = agnostic_mask(pose, person(), category)[0]
    chest, thighs, head = (
        region((0.42, 0.3, 0.58, 0.45)),
        region((0.42, 0.62, 0.58, 0.72)),
        region((0.45, 0.05, 0.55, 0.13)),
    )
    background = mask[:, :8].mean() + mask[:, -8:].mean()
    assert background == 0 and mask[head].mean() == 0
    assert (mask[chest].mean() > 0.95) == (category in ("upper", "dress"))
    assert (mask[thighs].mean() > 0.95) == (category in ("lower", "dress"))
    arms = region((0.28, 0.3, 0.32, 0.45))
    assert (mask[arms].mean() > 0.9) == (category in ("upper", "dress"))


def test_hands_join_the_lower_mask_only_where_they_are_over_it() -> None:
    frames = np.zeros((1, H, W, 3), np.uint8)
    pose = FixedPose(STANDING).estimate(frames)
    on_thigh = FixedHands(right=(0.45, 0.65), size=0.05).estimate(frames, pose)
    far = FixedHands(right=(0.22, 0.3), size=0.05).estimate(frames, pose)
    hand = region((0.2, 0.26, 0.24, 0.34))
    assert agnostic_mask(pose, person(), "lower", far)[0][hand].mean() == 0  # a raised hand is no part of the trousers
    assert agnostic_mask(pose, person(), "upper", far)[0][hand].mean() > 0.9  # but hides with the arms for a top
    assert agnostic_mask(pose, person(), "lower", on_thigh)[0][region((0.43, 0.6, 0.47, 0.7))].all()


def test_the_hand_prior_draws_found_hands_with_the_world_renderer_and_zero_elsewhere() -> None:
    frames = np.zeros((3, H, W, 3), np.uint8)
    pose = FixedPose(STANDING, depth=0.0).estimate(frames)
    hands = FixedHands(right=(0.4, 0.5), size=0.06, frames=[0, 2]).estimate(frames, pose)
    prior = render_hand_prior(hands, pose, H, W)
    assert prior.shape == (3, 3, H, W) and prior.dtype == np.uint8
    assert (prior[:, 1] == NO_HAND).all()  # no hand found in frame 1: nothing drawn
    on = (prior[:, 0] != NO_HAND).any(0)
    ys, xs = np.nonzero(on)
    centre = hand_positions(hands)[0, 0]
    palm = 0.06 * H  # the hand's shape reaches past its centre along the fingers (downwards here)
    assert (
        on[int(centre[1]), int(centre[0])]
        and abs(xs.mean() - centre[0]) < 0.2 * palm
        and 0 < ys.mean() - centre[1] < 0.6 * palm
    )
    assert 20 < on.sum() < 0.1 * H * W
    touching = prior[2, 0][on].astype(int) - NO_HAND
    hovering = (
        render_hand_prior(hands, FixedPose(STANDING, depth=0.15).estimate(frames), H, W)[2, 0][on].astype(int) - NO_HAND
    )
    assert touching.mean() > hovering.mean() > 0  # the world's encoding: bright on the garment plane, dim in front
    assert (render_hand_prior(HandPose.empty(2), pose, H, W) == NO_HAND).all()


def test_grips_from_fingertips() -> None:
    hand = open_hand((50.0, 50.0), 20.0)[:, :3]
    assert grip_of(hand) == OPEN
    pinch = hand.copy()
    pinch[4] = pinch[8] + 1.0
    assert grip_of(pinch) == PINCH
    fist = hand.copy()
    fist[[8, 12, 16, 20]] = fist[[5, 9, 13, 17]] - 0.2 * (fist[[5, 9, 13, 17]] - fist[0])
    assert grip_of(fist) == GRASP


def test_pose_render_of_estimated_joints_leaves_out_what_was_not_found() -> None:
    pose = FixedPose(STANDING).estimate(np.zeros((1, H, W, 3), np.uint8))
    pixels = pose.points[:, :12]
    full = draw_pose(pixels, H, W)
    visible = np.ones((1, 12), bool)
    visible[0, J["l_elbow"]] = False
    partial = draw_pose(pixels, H, W, visible=visible)
    lower_arm_colour = (np.array(POSE_COLOURS[POSE_LIMBS.index((6, 7))]) * 255 + 0.5).astype(np.uint8)
    assert (full[:, 0].transpose(1, 2, 0) == lower_arm_colour).all(-1).any()
    assert not (partial[:, 0].transpose(1, 2, 0) == lower_arm_colour).all(-1).any()
    x, y = pixels[0, J["l_elbow"]].astype(int)
    assert (full[:, 0, y, x] == 255).all() and not (partial[:, 0, y, x] == 255).all()
    assert isinstance(pose, BodyPose)


def test_densepose_iuv_frames_become_person_and_lip_parts(tmp_path) -> None:
    from itryon.data.video_io import write_video
    from itryon.preprocess.densepose_files import FileDensePose
    from itryon.preprocess.estimators import EstimatorError
    from itryon.preprocess.types import LIP

    iuv = np.zeros((2, 30, 20, 3), np.uint8)
    iuv[:, 5:20, 5:15, 0] = 2  # torso
    iuv[:, 20:28, 5:9, 0] = 9  # right upper leg
    write_video(tmp_path / "clip", iuv)
    seg = FileDensePose(tmp_path).for_clip("clip").segment(np.zeros((2, 60, 40, 3), np.uint8))  # frames twice the size
    assert seg.person.shape == (2, 60, 40) and seg.person[:, 10:40, 10:30].all() and seg.person[:, :8].sum() == 0
    assert (seg.parts[:, 20, 20] == LIP["upper_clothes"]).all() and (seg.parts[:, 48, 12] == LIP["right_leg"]).all()
    with pytest.raises(EstimatorError, match="DensePose IUV folder .*other does not exist"):
        FileDensePose(tmp_path).for_clip("other").segment(np.zeros((2, 60, 40, 3), np.uint8))
