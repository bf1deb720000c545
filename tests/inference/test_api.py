"""The Python API (`wam_pipe.load` -> `Watermarker`) on a real tiny checkpoint: input kinds, batching, results,
threads, precision, and the same answers as the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import wam_pipe
from wam_pipe.cli import main
from wam_pipe.core.errors import UserError
from wam_pipe.inference.api import DetectResult, EmbedResult, Watermarker



@pytest.fixture
def model(tmp_path: Path, untrained_checkpoint) -> Watermarker:
    return wam_pipe.load(untrained_checkpoint(tmp_path / "c.pt"), device="cpu")


def photo(height: int = 40, width: int = 60, seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (3, height, width), dtype=np.uint8))


def test_import_is_cheap_and_load_is_lazy():
    code = "import sys, wam_pipe; assert 'torch' not in sys.modules; assert callable(wam_pipe.load); print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ok"
    assert wam_pipe.Watermarker is Watermarker


def test_model_attributes(model):
    assert (model.nbits, model.img_size, model.device.type, model.precision) == (8, 32, "cpu", "fp32")
    assert not model.module.training
    assert "nbits=8" in repr(model)


def test_embed_keeps_kind_and_size(model):
    image = photo()
    as_uint8 = model.embed(image, "10110010")
    assert isinstance(as_uint8, EmbedResult)
    assert as_uint8.image.dtype == torch.uint8 and as_uint8.image.shape == image.shape
    assert as_uint8.message_bits == "10110010" and as_uint8.psnr > 10
    as_float = model.embed(image.float() / 255, "10110010")
    assert as_float.image.is_floating_point() and 0 <= float(as_float.image.min()) <= float(as_float.image.max()) <= 1
    # Float in, float out, unrounded: within one grey level of the uint8 result.
    assert (as_float.image * 255 - as_uint8.image.float()).abs().max() <= 1.0
    pil = Image.fromarray(image.permute(1, 2, 0).numpy())
    as_pil = model.embed(pil, "10110010")
    assert isinstance(as_pil.image, Image.Image) and as_pil.image.size == (60, 40)
    assert np.array_equal(np.asarray(as_pil.image), as_uint8.image.permute(1, 2, 0).numpy())
    as_numpy = model.embed(image.permute(1, 2, 0).numpy(), "10110010")
    assert torch.equal(as_numpy.image, as_uint8.image)


def test_batches_give_lists_in_order_and_match_single_calls(model):
    images = [photo(40, 60, 1), photo(70, 30, 2), photo(40, 60, 3)]  # mixed sizes
    messages = torch.tensor([[1, 0, 1, 0, 1, 0, 1, 0], [0] * 8, [1] * 8]).float()
    batch = model.embed(images, messages)
    assert [r.image.shape for r in batch] == [i.shape for i in images]
    assert [r.message_bits for r in batch] == ["10101010", "00000000", "11111111"]
    for image, message, result in zip(images, messages, batch):
        assert torch.equal(model.embed(image, message).image, result.image)
    stacked = torch.stack([photo(40, 60, s) for s in (4, 5)])  # (2, 3, 40, 60)
    found = model.detect(stacked, batch_size=1)
    assert isinstance(found, list) and len(found) == 2 and all(isinstance(f, DetectResult) for f in found)
    single = model.detect(stacked[1])
    assert torch.equal(single.logits, found[1].logits) and single.message_bits == found[1].message_bits


def test_detect_result_fields(model):
    found = model.detect(photo(50, 70))
    assert found.mask.shape == (50, 70) and found.mask.dtype == torch.bool
    assert found.message.shape == (8,) and found.bit_confidence.shape == (8,)
    assert bool(((found.bit_confidence >= 0.5) & (found.bit_confidence <= 1)).all())
    assert found.logits.shape == (9, 32, 32)
    assert found.confidence == 0.0 or 0.5 <= found.confidence <= 1.0
    assert found.present == (found.region >= 0.08)
    found.mask[0, 0] = True  # ordinary tensors, not inference-mode ones
    assert not found.logits.is_inference()


def test_random_messages_follow_the_generator(model):
    first = model.embed(photo(), generator=torch.Generator().manual_seed(3))
    again = model.embed(photo(), generator=torch.Generator().manual_seed(3))
    assert first.message_bits == again.message_bits and torch.equal(first.image, again.image)


def test_mask_limits_the_watermark(model):
    image = photo()
    mask = torch.zeros(40, 60)
    mask[:, :30] = 1
    marked = model.embed(image, "11110000", masks=mask).image
    assert torch.equal(marked[:, :, 30:], image[:, :, 30:])
    assert not torch.equal(marked[:, :, :30], image[:, :, :30])


def test_bad_inputs_are_user_errors(model):
    with pytest.raises(UserError, match="8"):
        model.embed(photo(), "101")
    with pytest.raises(UserError, match="0/1"):
        model.embed(photo(), "1011001x")
    with pytest.raises(UserError, match="cannot use a str"):
        model.detect("photo.jpg")
    with pytest.raises(UserError, match=r"\(3, H, W\)"):
        model.detect(torch.zeros(5, 10, 10))
    with pytest.raises(UserError, match="one per image"):
        model.embed([photo(), photo()], [[0] * 8] * 3)
    with pytest.raises(UserError, match="precision"):
        wam_pipe.load(model.source, device="cpu", precision="fp8")


def test_threads_get_the_single_thread_answers(model):
    images = [photo(40 + 4 * i, 60, i) for i in range(6)]
    expected = [(model.embed(im, "10110010").image, model.detect(im).logits) for im in images]
    got: dict[int, tuple] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(3):
                got[i] = (model.embed(images[i], "10110010").image, model.detect(images[i]).logits)
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(images))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    for i, (image, logits) in enumerate(expected):
        assert torch.equal(got[i][0], image) and torch.allclose(got[i][1], logits, atol=1e-5)


def test_bf16_precision_runs_under_autocast(tmp_path, untrained_checkpoint):
    model = wam_pipe.load(untrained_checkpoint(tmp_path / "c.pt"), device="cpu", precision="bf16")
    assert model.precision == "bf16"
    reference = wam_pipe.load(tmp_path / "c.pt", device="cpu")
    found, expected = model.detect(photo()), reference.detect(photo())
    assert found.logits.dtype == torch.float32 and not torch.equal(found.logits, expected.logits)
    assert torch.allclose(found.logits, expected.logits, atol=0.1)


def test_cli_detect_reports_what_the_api_finds(model, tmp_path, capsys):
    path = tmp_path / "p.png"
    Image.fromarray(photo(45, 65).permute(1, 2, 0).numpy()).save(path)
    assert main(["detect", "--checkpoint", str(model.source), "--image", str(path), "--json", "--device", "cpu"]) == 0
    report = json.loads(capsys.readouterr().out)
    found = model.detect(Image.open(path))
    assert report["message"] == found.message_bits and report["present"] == found.present
    assert report["bit_confidence"] == [round(float(c), 4) for c in found.bit_confidence]
