"""The registry: the 14 reference names, and for every registered augmentation (parametrized over the registry, so
a new one is tested without editing this file): documented config keys, eval strengths that it accepts."""

from __future__ import annotations

import inspect

import pytest
import torch

import wam_pipe.augment as augment
from wam_pipe.augment import AUGMENTATIONS, EVAL_STRENGTHS, build_augmentation, register_augmentation
from wam_pipe.augment.base import Augmentation
from wam_pipe.eval.grid import REFERENCE_GRID, Setting, build_settings

# The reference's augmentations (docs/eval.md), in its order: a fact to check the registry against.
NAMES = ["identity", "hflip", "rotate", "resize", "crop", "perspective", "crop_resize_pad", "jpeg", "gaussian_blur",
         "median_filter", "brightness", "contrast", "saturation", "hue"]


def test_the_fourteen_reference_augmentations_are_registered():
    assert list(AUGMENTATIONS)[:len(NAMES)] == NAMES
    assert set(EVAL_STRENGTHS) == set(AUGMENTATIONS)


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
def test_registered_under_its_name_and_exported(name):
    cls = AUGMENTATIONS[name]
    assert cls.name == name
    assert cls.__name__ in augment.__all__, "YAML names it as wam_pipe.augment.<Class>"
    assert getattr(augment, cls.__name__) is cls


def test_the_reference_grid_is_frozen_at_the_reference_35_settings():
    assert isinstance(REFERENCE_GRID, tuple) and len(REFERENCE_GRID) == 35
    assert list(dict.fromkeys(s.aug for s in REFERENCE_GRID)) == NAMES
    # the registered strengths of the reference augmentations are the reference's
    assert list(REFERENCE_GRID) == build_settings({name: None for name in NAMES})
    assert build_settings(None) == list(REFERENCE_GRID)


def test_registering_an_augmentation_leaves_the_default_grid_alone(monkeypatch):
    # registered into the real registry; monkeypatch removes the entries again afterwards
    monkeypatch.setitem(AUGMENTATIONS, "posterize_test", None)
    monkeypatch.setitem(EVAL_STRENGTHS, "posterize_test", None)
    del AUGMENTATIONS["posterize_test"], EVAL_STRENGTHS["posterize_test"]
    before = build_settings(None)

    @register_augmentation("posterize_test", eval_strengths=(2, 4))
    class Posterize(Augmentation):
        pass

    assert AUGMENTATIONS["posterize_test"] is Posterize and Posterize.name == "posterize_test"
    assert EVAL_STRENGTHS["posterize_test"] == (2, 4)
    assert build_settings({"posterize_test": None}) == [Setting("posterize_test", 2.0), Setting("posterize_test", 4.0)]
    assert build_settings(None) == before == list(REFERENCE_GRID)
    with pytest.raises(ValueError, match="taken by"):
        register_augmentation("rotate")(Posterize)


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
def test_docstring_lists_every_config_key(name):
    cls = AUGMENTATIONS[name]
    doc = inspect.getdoc(cls)
    params = [p for p in inspect.signature(cls).parameters]
    assert params[0] == "weight" and inspect.signature(cls).parameters["weight"].default == 1.0
    for param in params:
        assert f"{param}:" in doc, f"{name}: `{param}` missing from Args"
    assert "strength" in doc, f"{name}: the meaning of strength is not documented"


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
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
