"""The augment stage: YAML construction, picking by weight, validation, and the proof that it never syncs."""

from __future__ import annotations

import pytest
import torch
from hydra_zen import instantiate
from omegaconf import OmegaConf
from torch.overrides import TorchFunctionMode

from wam_pipe.augment import (
    AUGMENTATIONS,
    ColorJitter,
    GaussianBlur,
    HorizontalFlip,
    Identity,
    MaskSampler,
    Rotate,
)
from wam_pipe.stages import Augment

YAML = """
_target_: wam_pipe.stages.Augment
masks: {_target_: wam_pipe.augment.MaskSampler, irregular: 0.25, box: 0.25, full: 0.25, segm: 0.25,
        invert_proba: 0.5}
cover_jitter: {_target_: wam_pipe.augment.ColorJitter}
augs:
  identity: {_target_: wam_pipe.augment.Identity, weight: 1}
  rotate: {_target_: wam_pipe.augment.Rotate, weight: 1, degrees: [-10, 10]}
  jpeg: {_target_: wam_pipe.augment.JPEG, weight: 1, quality: [40, 80]}
  crop_resize_pad: {_target_: wam_pipe.augment.CropResizePad, weight: 2}
"""

# Calls that read device data back to the host (a host-device synchronization on an accelerator).
_T = torch.Tensor
SYNC_CALLS = {
    _T.item, _T.tolist, _T.__bool__, _T.__int__, _T.__float__, _T.__index__, _T.numpy, _T.cpu, _T.nonzero,
    torch.nonzero, _T.argwhere, torch.argwhere, _T.masked_select, torch.masked_select, _T.unique, torch.unique,
    _T.any, _T.all,
}


def _is_sync(func, args) -> bool:
    if func in {_T.any, _T.all}:
        return False  # reductions stay on the device; only reading their result back is a sync
    if func is _T.__getitem__:
        index = args[1] if len(args) > 1 else None
        parts = index if isinstance(index, tuple) else (index,)
        return any(isinstance(p, torch.Tensor) and p.dtype == torch.bool for p in parts)  # data-dependent shape
    return func in SYNC_CALLS


class DeviceTensor(torch.Tensor):
    """Stands for a tensor on an accelerator: any read-back to the host raises (it propagates through ops)."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if _is_sync(func, args):
            raise AssertionError(f"host sync: {getattr(func, '__name__', func)} on a device tensor")
        return super().__torch_function__(func, types, args, kwargs or {})


class NoSyncOnDevices(TorchFunctionMode):
    """Flags read-backs of any non-CPU tensor, including those created inside the code under test."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if _is_sync(func, args) and any(t.device.type != "cpu" for t in tensors):
            raise AssertionError(f"host sync: {getattr(func, '__name__', func)} on a {tensors[0].device} tensor")
        return func(*args, **(kwargs or {}))


def _on_device(x: torch.Tensor) -> DeviceTensor:
    return x.as_subclass(DeviceTensor)


def _batch(batch: int = 4, size: int = 32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    imgs = torch.randn(batch, 3, size, size)
    segm = (torch.rand(batch, 3, size, size) > 0.8).to(torch.uint8)
    masks = (torch.rand(batch, 1, size, size) > 0.5).float()
    return imgs, segm, masks


def test_the_guards_catch_read_backs():
    x = _on_device(torch.ones(3))
    for read_back in (lambda: x.sum().item(), lambda: bool(x.any()), x.tolist,
                      lambda: torch.nonzero(x), lambda: x[x > 0], lambda: float(x[0])):
        with pytest.raises(AssertionError, match="host sync"):
            read_back()
    assert isinstance(x * 2 + 1, DeviceTensor)  # the guard follows the data through ordinary ops
    with NoSyncOnDevices(), pytest.raises(AssertionError, match="host sync"):
        torch.ones(2, device="meta").tolist()


@pytest.mark.parametrize("per_sample", [False, True])
def test_augment_call_never_reads_its_inputs_back(per_sample):
    imgs, _, masks = _batch()
    for name, cls in AUGMENTATIONS.items():
        if name == "jpeg":  # off CUDA it encodes with a host codec, which reads the pixels by design (and whether
            continue        # the guard sees that depends on the codec installed); its one CUDA sync is documented
        stage = Augment(augs={name: cls()}, per_sample=per_sample)
        out, out_masks, picked = stage(_on_device(imgs), _on_device(masks))
        assert picked == name and out.shape == imgs.shape and out_masks.shape == masks.shape
        assert isinstance(out, DeviceTensor), f"{name}: the guard did not follow the computation"


@pytest.mark.parametrize("per_sample", [False, True])
def test_augment_call_runs_on_a_device_it_cannot_read(per_sample):
    # On the meta device nothing can be read back at all, including tensors created inside the augmentation.
    imgs = torch.empty(4, 3, 32, 32, device="meta")
    masks = torch.empty(4, 2, 32, 32, device="meta")
    with NoSyncOnDevices():
        for name, cls in AUGMENTATIONS.items():
            if name == "jpeg":  # the codecs need real bytes; JPEG's one sync on CUDA is documented
                continue
            out, out_masks, _ = Augment(augs={name: cls()}, per_sample=per_sample)(imgs, masks)
            assert out.device.type == "meta" and out.shape == imgs.shape and out_masks.shape == masks.shape


@pytest.mark.parametrize("multiple", [False, True])
@pytest.mark.parametrize("per_sample", [False, True])
def test_sample_masks_and_jitter_never_sync(multiple, per_sample):
    imgs, segm, _ = _batch()
    for kind in ("irregular", "box", "full", "segm"):
        weights = {"irregular": 0.0, "box": 0.0, "full": 0.0, "segm": 0.0, kind: 1.0}
        stage = Augment(masks=MaskSampler(**weights, multiple=multiple, per_sample=per_sample),
                        cover_jitter=ColorJitter())
        masks = stage.sample_masks(_on_device(segm))
        assert masks.shape == (4, 3 if multiple else 1, 32, 32)
        with NoSyncOnDevices():
            meta_masks = stage.sample_masks(torch.empty(4, 3, 32, 32, dtype=torch.uint8, device="meta"))
            jittered = stage.jitter(torch.empty(4, 3, 32, 32, device="meta"))
        assert meta_masks.shape == masks.shape and jittered.shape == (4, 3, 32, 32)
        assert isinstance(stage.jitter(_on_device(imgs)), DeviceTensor)


def test_built_from_yaml_with_an_override():
    config = OmegaConf.create(YAML)
    stage = instantiate(config)
    assert isinstance(stage, Augment) and isinstance(stage.masks, MaskSampler)
    assert stage.names == ["identity", "rotate", "jpeg", "crop_resize_pad"]
    assert stage.weights == {"identity": 1.0, "rotate": 1.0, "jpeg": 1.0, "crop_resize_pad": 2.0}
    assert isinstance(stage.cover_jitter, ColorJitter) and stage.multiple is False
    config.augs.rotate.weight = 0  # as `stages.augment.augs.rotate.weight=0`
    assert instantiate(config).weights["rotate"] == 0.0


def test_picks_by_weight_and_never_a_zero_weight():
    imgs, _, masks = _batch(batch=1, size=8)
    torch.manual_seed(0)
    stage = Augment(augs={"identity": Identity(weight=1), "rotate": Rotate(weight=0), "hflip": HorizontalFlip(3)})
    picks = [stage(imgs, masks)[2] for _ in range(400)]
    assert "rotate" not in picks
    assert 60 < picks.count("identity") < 140  # 1/4 of 400 = 100
    assert picks.count("identity") + picks.count("hflip") == 400


def test_applies_the_picked_augmentation():
    imgs, _, masks = _batch()
    out, out_masks, name = Augment(augs={"hflip": HorizontalFlip()})(imgs, masks)
    assert name == "hflip" and torch.equal(out, imgs.flip(-1)) and torch.equal(out_masks, masks.flip(-1))


def test_defaults_identity_only_and_reference_masks():
    for augs in (None, {}, {"rotate": None}):
        stage = Augment(augs=augs)
        assert stage.names == ["identity"]
    stage = Augment()
    imgs, segm, masks = _batch()
    out, out_masks, name = stage(imgs, masks)
    assert name == "identity" and out is imgs
    assert stage.masks.weights == {"irregular": 0.25, "box": 0.25, "full": 0.25, "segm": 0.25}
    assert stage.jitter(imgs) is imgs
    assert Augment(masks=MaskSampler(multiple=True, max_watermarks=4)).multiple is True


def test_cheap_validation_names_the_problem():
    zero = Rotate(weight=1.0)
    zero.weight = 0.0
    with pytest.raises(ValueError, match="augs: every weight is 0"):
        Augment(augs={"identity": Identity(weight=0), "rotate": zero})
    broken = Rotate()
    broken.weight = -2.0
    with pytest.raises(ValueError, match=r"augs\.rotate\.weight"):
        Augment(augs={"rotate": broken})
    with pytest.raises(ValueError, match=r"augs\.rotate: expected an augmentation"):
        Augment(augs={"rotate": {"degrees": [0, 1]}})


def test_wam_pipe_validate_reports_bad_values_with_their_keys():
    from wam_pipe.config.validate import validate

    config = OmegaConf.create("""
    version: 1
    name: bad-augment
    stages:
      augment:
        _target_: wam_pipe.stages.Augment
        masks: {_target_: wam_pipe.augment.MaskSampler, box: -1}
        cover_jitter: {_target_: wam_pipe.augment.ColorJitter, hue: 0.9}
        augs:
          rotate: {_target_: wam_pipe.augment.Rotate, weight: 0, degrees: [10, -10]}
          blur: {_target_: wam_pipe.augment.GaussianBlur, weight: 0, kernel_size: [4, 4]}
    """)
    _, errors = validate(config, "p.yaml")
    expected = [
        "p.yaml: stages.augment.augs: every weight is 0 (rotate, blur); give one a positive weight",
        "p.yaml: stages.augment.masks.box: probability must be >= 0, got -1",
        "p.yaml: stages.augment.cover_jitter.hue: must be >= 0 and <= 0.5, got 0.9",
        "p.yaml: stages.augment.augs.rotate.degrees: min 10 is larger than max -10; write [min, max]",
        "p.yaml: stages.augment.augs.blur.kernel_size: [4, 4] contains no odd size",
    ]
    for line in expected:
        assert line in errors, errors


def test_a_registered_augmentation_is_named_as_the_eval_grid_names_it():
    """Training says `gaussian_blur` as eval does: the old `blur` gets a did-you-mean, in validation and in Python."""
    from wam_pipe.config.validate import validate

    config = OmegaConf.create("""
    version: 1
    name: old-name
    stages:
      augment:
        _target_: wam_pipe.stages.Augment
        augs:
          blur: {_target_: wam_pipe.augment.GaussianBlur, kernel_size: [3, 3]}
    """)
    _, errors = validate(config, "p.yaml")
    assert "p.yaml: stages.augment.augs.blur: unknown augmentation name 'blur' (did you mean 'gaussian_blur'?); " \
           "entries are named as in the registry and the eval grid, and GaussianBlur is 'gaussian_blur'" in errors
    with pytest.raises(ValueError, match=r"augs.blur: unknown augmentation name 'blur' \(did you mean 'gaussian_blur'"):
        Augment(augs={"blur": GaussianBlur()})
    assert Augment(augs={"gaussian_blur": GaussianBlur()}).names == ["gaussian_blur"]
