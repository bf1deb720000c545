"""Shared fixtures. Tests make their own data, or use ../shared/data/coco_tiny and skip cleanly without it."""

from __future__ import annotations

import math
import types
import zlib
from pathlib import Path

import pytest
import torch
import yaml

from wam_pipe.core.checkpoint import save_checkpoint
from wam_pipe.models import ConvEmbedder, ConvExtractor, Watermarker
from wam_pipe.models.reference_layout import RELEASED, ReferenceParams, attenuation_constants, expected_layout

REPO_ROOT = Path(__file__).resolve().parents[1]
COCO_TINY = REPO_ROOT.parent / "shared" / "data" / "coco_tiny"
PARITY_DIR = REPO_ROOT.parent / "shared" / "reference" / "wam-parity"


@pytest.fixture(autouse=True)
def one_thread():
    """Every test runs torch on one intra-op thread: on a shared 2-core machine two threads contend with other
    processes and small CPU ops run up to 100x slower (measured); one thread keeps tests fast and stable."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def coco_tiny() -> Path:
    """The real 80+80-image COCO subset (train2017/, val2017/, annotations/instances_{train,val}2017.json)."""
    if not (COCO_TINY / "annotations" / "instances_train2017.json").is_file():
        pytest.skip(f"real COCO subset not found at {COCO_TINY} (only present on the team's machines)")
    return COCO_TINY


@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory) -> Path:
    """48 synthetic images (40-80 px) built through the real CLI into 6 shards of 32-px samples."""
    from wam_pipe.cli import main

    root = tmp_path_factory.mktemp("tiny_data")
    code = main(["data", "synth", "--out", str(root / "coco"), "--images", "48", "--min-size", "40",
                 "--max-size", "80", "--seed", "1"])
    assert code == 0
    code = main(["shard", "build", "--images", str(root / "coco" / "images"), "--annotations",
                 str(root / "coco" / "annotations.json"), "--out", str(root / "shards"), "--size", "32",
                 "--samples-per-shard", "8", "--workers", "1"])
    assert code == 0
    return root / "shards"


# ---- deterministic weights in the reference's layout (the rule of ../shared/reference/wam-parity/README.md) -------
# Every entry except `attenuation.*` is `det_tensor(key, shape)`; `attenuation.*` are the JND's constant kernels.
# The parity test uses the parity data's shapes; the import/export/fine-tune tests take shapes from our own
# `expected_layout`, so they run without ../shared.

def det_tensor(key: str, shape: tuple[int, ...]) -> torch.Tensor:
    g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    z = torch.randn(shape, generator=g, dtype=torch.float32)
    if len(shape) >= 2:
        return z / math.sqrt(math.prod(shape[1:]))
    return 1.0 + 0.1 * z if key.endswith("weight") else 0.1 * z


def deterministic_state(shapes: dict[str, tuple[int, ...]], params: ReferenceParams = RELEASED) -> dict:
    """{reference key: tensor} for these shapes; attenuation.* from our JND's constants."""
    constants = attenuation_constants(params.build_jnd())
    return {k: constants[k] if k.startswith("attenuation.") else det_tensor(k, shape) for k, shape in shapes.items()}


def reference_state(params: ReferenceParams = RELEASED) -> dict:
    """A reference-layout state_dict for `params` with deterministic weights."""
    _, shapes = expected_layout(params)
    return deterministic_state(shapes, params)


def write_reference_file(path: Path, params: ReferenceParams = RELEASED) -> Path:
    torch.save(reference_state(params), path)
    return path


@pytest.fixture(scope="session")
def reference_weights() -> types.SimpleNamespace:
    """Helpers that write reference-layout checkpoints with deterministic weights (see above)."""
    return types.SimpleNamespace(det_tensor=det_tensor, deterministic_state=deterministic_state,
                                 reference_state=reference_state, write_reference_file=write_reference_file,
                                 parity_dir=PARITY_DIR)


@pytest.fixture
def no_hang():
    """A guard for tests of former hangs: if the test is still running after 120 s (a hang inside C code, which no
    Python exception can interrupt), faulthandler prints every thread's stack and exits the test process, so the
    suite fails loudly instead of hanging."""
    import faulthandler

    faulthandler.dump_traceback_later(120, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.fixture
def small_tmpfs(tmp_path):
    """A real 256 KiB tmpfs (a disk that fills up), mounted at tmp_path/disk; yields (path, resize(kib)).

    Needs root (CAP_SYS_ADMIN); skipped elsewhere. `resize` remounts it larger: "free space, then rerun"."""
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True,
                          text=True, timeout=30)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill (needs root): {done.stderr.strip()}")

    def resize(kib: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={kib}k", str(mount)], check=True, timeout=30)

    try:
        yield mount, resize
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, timeout=30)


def _write_untrained_checkpoint(path: Path, nbits: int = 8) -> Path:
    """A checkpoint of a random tiny model with the `config` a training run would store."""
    torch.manual_seed(0)
    step = {"_target_": "wam_pipe.stages.Step",
            "embedder": {"_target_": "wam_pipe.models.ConvEmbedder", "nbits": nbits, "channels": 4, "depth": 1},
            "extractor": {"_target_": "wam_pipe.models.ConvExtractor", "nbits": nbits, "channels": 4, "depth": 0},
            "img_size": 32, "scaling_w": 0.3}
    model = Watermarker(ConvEmbedder(nbits=nbits, channels=4, depth=1), ConvExtractor(nbits=nbits, channels=4, depth=0),
                        scaling_w=0.3, img_size=32)
    config = yaml.safe_dump({"version": 1, "name": "tiny", "stages": {"step": step}})
    save_checkpoint(path, {"model": model.state_dict(), "config": config, "epoch": 1, "step": 3})
    return path


@pytest.fixture
def untrained_checkpoint():
    """`untrained_checkpoint(path, nbits=8) -> path`: writes a random tiny model's checkpoint (a fixture, not an
    import: test folders are not packages, so one test module cannot import another on a clean checkout)."""
    return _write_untrained_checkpoint
