"""The checkpoint readers and reference-layout files: resuming refuses them, model loading converts them."""

from __future__ import annotations

import pytest
import torch

from wam_pipe.core.errors import UserError
from wam_pipe.core.checkpoint import load_checkpoint
from wam_pipe.models.reference_layout import ReferenceParams, load_init_weights, load_model_checkpoint, reference_names

SMALL = ReferenceParams("vae_small", "sam_tiny", nbits=8, img_size=32, attenuation=None)


@pytest.fixture
def reference_file(tmp_path, reference_weights):
    return reference_weights.write_reference_file(tmp_path / "wam.pth", SMALL)


def test_resume_refuses_a_reference_checkpoint(reference_file):
    with pytest.raises(UserError, match=r"wam.pth: a Watermark Anything reference checkpoint .*step.init_from"):
        load_checkpoint(reference_file)


def test_model_loading_converts_with_the_params_beside_the_file(reference_file, capsys):
    import json

    (reference_file.parent / "params.json").write_text(json.dumps(SMALL.to_json()))
    checkpoint = load_model_checkpoint(reference_file)
    assert "configuration from" in capsys.readouterr().err
    state = torch.load(reference_file, weights_only=True)
    with torch.device("meta"):
        names = reference_names(SMALL.build())
    assert set(checkpoint["model"]) == set(names)
    assert all(torch.equal(checkpoint["model"][ours], state[ref]) for ours, ref in names.items())


def test_init_from_renames_onto_the_pipeline_model(reference_file, capsys):
    model = SMALL.build()
    weights = load_init_weights(reference_file, model)
    model.load_state_dict(weights, strict=False)
    state = torch.load(reference_file, weights_only=True)
    assert torch.equal(model.extractor.pixel_decoder.head.weight, state["detector.pixel_decoder.last_layer.weight"])
    assert "reference checkpoint" in capsys.readouterr().err
