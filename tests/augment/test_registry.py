"""The registry: 14 names, documented config keys, eval strengths that every augmentation accepts."""

from __future__ import annotations

import inspect

import pytest
import torch

import wam_pipe.augment as augment
from wam_pipe.augment import AUGMENTATIONS, EVAL_STRENGTHS, build_augmentation

NAMES = ["identity", "hflip", "rotate", "resize", "crop", "perspective", "crop_resize_pad", "jpeg", "gaussian_blur",
         "median_filter", "brightness", "contrast", "saturation", "hue"]


def test_the_fourteen_reference_augmentations_are_registered():
    assert list(AUGMENTATIONS) == NAMES
    assert set(EVAL_STRENGTHS) == set(NAMES)
    for name, cls in AUGMENTATIONS.items():
        assert cls.name == name
        assert cls.__name__ in augment.__all__, "YAML names it as wam_pipe.augment.<Class>"


@pytest.mark.parametrize("name", NAMES)
def test_docstring_lists_every_config_key(name):
    cls = AUGMENTATIONS[name]
    doc = inspect.getdoc(cls)
    params = [p for p in inspect.signature(cls).parameters]
    assert params[0] == "weight" and inspect.signature(cls).parameters["weight"].default == 1.0
    for param in params:
        assert f"{param}:" in doc, f"{name}: `{param}` missing from Args"
    assert "strength" in doc, f"{name}: the meaning of strength is not documented"


@pytest.mark.parametrize("name", NAMES)
def test_every_eval_strength_runs_deterministically(name):
    aug = build_augmentation(name)
    torch.manual_seed(0)
    imgs, masks = torch.randn(2, 3, 32, 32), (torch.rand(2, 2, 32, 32) > 0.5).float()
    for strength in EVAL_STRENGTHS[name]:
        first = aug.apply(imgs, masks, strength)
        torch.manual_seed(99)  # apply must not depend on the global RNG
        second = aug.apply(imgs, masks, strength)
        assert first[0].shape == imgs.shape and first[1].shape == masks.shape
        assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])


def test_reference_training_defaults():
    assert AUGMENTATIONS["rotate"]().degrees == (-10.0, 10.0)
    assert AUGMENTATIONS["jpeg"]().quality == (40, 80)
    assert AUGMENTATIONS["median_filter"]().kernel_size == (3, 7)
    assert AUGMENTATIONS["gaussian_blur"]().kernel_size == (3, 17)
    assert AUGMENTATIONS["hue"]().shift == (-0.1, 0.1)
    assert AUGMENTATIONS["crop"]().size == (0.33, 1.0)


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(KeyError, match="rotate"):
        build_augmentation("rotation")
