"""The evaluation grid: default reference settings, YAML-given grids, and clear errors for bad names."""

from __future__ import annotations

import pytest
import torch

from wam_pipe.augment import EVAL_STRENGTHS
from wam_pipe.core.errors import UserError
from wam_pipe.eval.grid import DEFAULT_MASKS, Grid, Setting, batch_masks, build_settings, check_masks, fixed_masks


def test_default_grid_is_the_reference_35_settings_and_6_masks():
    settings = build_settings(None)
    assert len(settings) == 35
    assert [s.aug for s in settings].count("rotate") == 4
    assert Setting("identity", None) in settings and Setting("jpeg", 40.0) in settings
    assert check_masks(DEFAULT_MASKS) == ["full", "box", "box_inverted", "irregular", "irregular_inverted", "segm"]
    grid = Grid(list(DEFAULT_MASKS), settings)
    assert len(grid.cells) == 6 * 35
    assert grid.cells[0] == ("full", settings[0]) and grid.cells[35] == ("box", settings[0])  # mask-major


def test_yaml_grid_null_means_reference_strengths():
    settings = build_settings({"identity": None, "median_filter": None, "rotate": [10, 90]})
    assert [s.label for s in settings] == ["identity", *[f"median_filter {k}" for k in (3, 5, 9, 17)],
                                           "rotate 10", "rotate 90"]
    assert len(build_settings({"hue": None})) == len(EVAL_STRENGTHS["hue"])


@pytest.mark.parametrize("augs, message", [
    ({"rotat": [10]}, "eval.augs.rotat: unknown augmentation"),
    ({"rotate": []}, "eval.augs.rotate: empty list"),
    ({"identity": [2]}, "eval.augs.identity: takes no strength"),
    ({}, "eval.augs: empty"),
])
def test_bad_augs_are_user_errors(augs, message):
    with pytest.raises(UserError, match=message):
        build_settings(augs)


@pytest.mark.parametrize("masks, message", [(["box", "circle"], "unknown mask 'circle'"), ([], "empty"),
                                            (["box", "box"], "twice")])
def test_bad_masks_are_user_errors(masks, message):
    with pytest.raises(UserError, match=message):
        check_masks(masks)


def test_batch_masks_shapes_and_segm_union():
    segm = torch.zeros(2, 3, 16, 16, dtype=torch.uint8)
    segm[0, 0, :4] = 1
    segm[0, 2, -4:] = 1  # two instances of image 0; image 1 has none
    masks = batch_masks(list(DEFAULT_MASKS), segm, fixed_masks(16, 16, torch.device("cpu")))
    assert all(m.shape == (2, 1, 16, 16) for m in masks.values())
    assert masks["full"].sum() == 2 * 256
    assert torch.equal(masks["box"] + masks["box_inverted"], torch.ones(2, 1, 16, 16))
    assert masks["segm"][0].sum() == 8 * 16 and masks["segm"][1].sum() == 0
    assert torch.equal(masks["irregular"], fixed_masks(16, 16, torch.device("cpu"))["irregular"].expand(2, -1, -1, -1))


def test_aug_args_build_the_grids_augmentations_with_those_arguments():
    settings = build_settings({"crop_resize_pad": None, "median_filter": [3], "rotate": [10]})
    grid = Grid(["full"], settings, {"crop_resize_pad": {"eval_setting": "reference"},
                                     "median_filter": {"algorithm": "reference"}})
    assert grid.augmentations["crop_resize_pad"].eval_setting == "reference"
    assert grid.augmentations["median_filter"].algorithm == "reference"
    assert grid.augmentations["rotate"].interpolation == "bilinear"  # not named: its defaults
    assert Grid(["full"], settings).augmentations["crop_resize_pad"].eval_setting == "centred"


@pytest.mark.parametrize("aug_args, message", [
    ({"jpeg": {"weight": 1}}, r"eval.aug_args.jpeg: not in the grid \(it has crop_resize_pad, rotate\)"),
    ({"rotate": {"angle": 3}}, "eval.aug_args.rotate.angle: rotate takes no argument 'angle'; it takes weight"),
    ({"crop_resize_pad": {"eval_setting": "paper"}}, "eval.aug_args.crop_resize_pad.eval_setting: unknown setting"),
    ({"rotate": "nearest"}, "eval.aug_args.rotate: expected a mapping"),
])
def test_bad_aug_args_are_user_errors(aug_args, message):
    with pytest.raises(UserError, match=message):
        Grid(["full"], build_settings({"crop_resize_pad": None, "rotate": [10]}), aug_args)
