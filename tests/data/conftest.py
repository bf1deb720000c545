"""Fixtures of the data-path tests: a small synthetic COCO set, its shards, and a COCO set full of bad inputs."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest
from PIL import Image

from wam_pipe.data.shards.build import build_shards
from wam_pipe.data.shards.build_state import BuildConfig
from wam_pipe.data.synth import write_synthetic_coco

SYNTH_IMAGES = 36


@pytest.fixture(scope="session")
def synth_coco(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """36 synthetic images (80-200 px): (images folder, annotations JSON)."""
    root = tmp_path_factory.mktemp("synth")
    write_synthetic_coco(root / "images", root / "annotations.json", SYNTH_IMAGES, seed=1, min_size=80,
                         max_size=200, workers=1)
    return root / "images", root / "annotations.json"


@pytest.fixture(scope="session")
def synth_shards(synth_coco: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic set built into 9 shards of 4 samples at 64 px (small and quick to decode)."""
    images, annotations = synth_coco
    out = tmp_path_factory.mktemp("shards")
    build_shards(BuildConfig(images, annotations, out, size=64, samples_per_shard=4, workers=1, progress=False))
    return out


def _jpeg(array: np.ndarray, mode: str | None = None, **kw) -> bytes:
    image = Image.fromarray(array)
    if mode:
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **kw)
    return buffer.getvalue()


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _square_polygon(w: int, h: int) -> list[list[float]]:
    return [[w * 0.25, h * 0.25, w * 0.75, h * 0.25, w * 0.75, h * 0.75, w * 0.25, h * 0.75]]


def write_bad_inputs(root: Path) -> dict[str, int]:
    """A COCO folder exercising every input case; returns {case name: image id}.

    Cases: good, grayscale, cmyk, png_alpha, palette_alpha, crowd (uncompressed RLE), no_annotations (all usable);
    corrupt, truncated, missing, bomb, size_mismatch, bad_rle (skipped). Also one file the JSON does not list and
    one annotation naming an unknown image id.
    """
    images = root / "images"
    images.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (90, 120, 3), dtype=np.uint8)
    cases: dict[str, tuple[str, bytes | None, int, int]] = {
        "good": ("good.jpg", _jpeg(rgb), 120, 90),
        "grayscale": ("gray.jpg", _jpeg(rgb, "L"), 120, 90),
        "cmyk": ("cmyk.jpg", _jpeg(rgb, "CMYK"), 120, 90),
        "png_alpha": ("alpha.png", _png(Image.fromarray(np.dstack([rgb, rgb[..., :1]]), "RGBA")), 120, 90),
        "palette_alpha": ("palette.png", _png(_palette_with_transparency(rgb)), 120, 90),
        "crowd": ("crowd.jpg", _jpeg(rgb), 120, 90),
        "no_annotations": ("empty.jpg", _jpeg(rgb), 120, 90),
        "corrupt": ("corrupt.jpg", b"\xff\xd8\xff\xe0 not really a jpeg" + bytes(200), 120, 90),
        "truncated": ("truncated.jpg", _jpeg(rgb)[:700], 120, 90),
        "missing": ("missing.jpg", None, 120, 90),
        "bomb": ("bomb.png", _png(Image.new("1", (10000, 10000))), 10000, 10000),
        "size_mismatch": ("mismatch.jpg", _jpeg(rgb), 100, 90),
        "bad_rle": ("badrle.jpg", _jpeg(rgb), 120, 90),
    }
    ids = {name: position + 1 for position, name in enumerate(cases)}
    records, annotations = [], []
    for name, (file_name, data, width, height) in cases.items():
        if data is not None:
            (images / file_name).write_bytes(data)
        records.append({"id": ids[name], "file_name": file_name, "width": width, "height": height})
        if name != "no_annotations":
            annotations.append(_annotation(len(annotations) + 1, ids[name], _square_polygon(width, height), 0))
    crowd = np.zeros((90, 120), dtype=np.uint8)
    crowd[10:40, 60:100] = 1
    from wam_pipe.data.synth_shapes import uncompressed_rle

    annotations.append(_annotation(len(annotations) + 1, ids["crowd"], uncompressed_rle(crowd), 1))
    annotations.append(_annotation(len(annotations) + 1, ids["bad_rle"], {"size": [90, 120], "counts": [5, 7]}, 1))
    annotations.append(_annotation(len(annotations) + 1, 9999, _square_polygon(120, 90), 0))  # unknown image
    (images / "not_listed.jpg").write_bytes(_jpeg(rgb))
    data = {"images": records, "annotations": annotations,
            "categories": [{"id": 1, "name": "thing", "supercategory": "x"}]}
    (root / "annotations.json").write_text(json.dumps(data))
    return ids


def _palette_with_transparency(rgb: np.ndarray) -> Image.Image:
    image = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    image.info["transparency"] = 0
    return image


def _annotation(ann_id: int, image_id: int, segmentation, iscrowd: int) -> dict:
    return {"id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": iscrowd,
            "segmentation": segmentation, "area": 1.0, "bbox": [0, 0, 1, 1]}


@pytest.fixture(scope="session")
def bad_inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    root = tmp_path_factory.mktemp("bad")
    return root, write_bad_inputs(root)


# --- real servers on 127.0.0.1 (remote shard tests) ----------------------------------------------------------------

SERVER_START_S = 30.0  # bounded start: a server that does not answer by then fails the fixture
GCS_ENV = {"NO_GCE_CHECK": "true", "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}  # + STORAGE_EMULATOR_HOST
S3_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
          "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_url(url: str, process: subprocess.Popen, seconds: float = SERVER_START_S) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering {url}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except urllib.error.HTTPError:
            return  # it answers (a 404 is an answer)
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not answer {url} within {seconds} s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=SERVER_START_S)


class LocalServer:
    """A server subprocess on 127.0.0.1 at `url`, started by `command` and answering `url + ready_path` within
    SERVER_START_S (else stopped, and the fixture fails); `kill()` stops it."""

    def __init__(self, command: list[str], ready_path: str, env: dict[str, str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen([str(self.port) if arg == "{port}" else arg for arg in command], env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_url(self.url + ready_path, self.process)
        except RuntimeError:
            stop(self.process)
            raise

    def kill(self) -> None:
        stop(self.process)


class HttpServer(LocalServer):
    """`python -m http.server` serving `directory`."""

    def __init__(self, directory: Path):
        super().__init__([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "{port}", "--directory",
                          str(directory)], "/")


class MotoServer(LocalServer):
    """moto's S3 API server (`python -m moto.server`); `endpoint` for s3fs / botocore."""

    def __init__(self, **env: str):
        pytest.importorskip("moto.server", reason="moto[server] not installed (pip install -e '.[test]')")
        pytest.importorskip("s3fs", reason="s3fs not installed (pip install -e '.[test]')")
        super().__init__([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", "{port}"], "/moto-api/",
                         env={**os.environ, **S3_ENV, **env})
        self.endpoint = self.url

    def filesystem(self):
        import s3fs

        return s3fs.S3FileSystem(endpoint_url=self.endpoint, skip_instance_cache=True)


class GcsServer(LocalServer):
    """A Cloud Storage emulator (`gcp-storage-emulator`, the JSON API that gcsfs speaks), in memory; gcsfs finds it
    through STORAGE_EMULATOR_HOST (`gcs_server`)."""

    def __init__(self) -> None:
        pytest.importorskip("gcp_storage_emulator", reason="gcp-storage-emulator not installed (pip install -e '.[test]')")
        pytest.importorskip("gcsfs", reason="gcsfs not installed (pip install -e '.[test]')")
        super().__init__([sys.executable, "-c", "from gcp_storage_emulator.__main__ import main; main()", "start",
                          "--host", "127.0.0.1", "--port", "{port}", "--in-memory"], "/storage/v1/b")
        self.endpoint = self.url


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """`values` set in `os.environ` for the block, the previous values (or their absence) restored after it."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def gcs_server() -> Iterator[GcsServer]:
    server = GcsServer()
    # gcsfs reads the emulator's address from the environment, as it reads credentials (never from YAML); with no
    # credentials found it connects anonymously, which the emulator accepts.
    with environment({**GCS_ENV, "STORAGE_EMULATOR_HOST": server.endpoint}):
        import fsspec
        import gcsfs

        # gcsfs' default `gs` file system first asks the bucket's type over gRPC, which only the real service
        # speaks (the emulator would make it wait 60 s, then fall back): use the plain JSON-API file system, as
        # GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false does when set before gcsfs is imported.
        fsspec.register_implementation("gs", gcsfs.GCSFileSystem, clobber=True)
        yield server
        server.kill()


@pytest.fixture(scope="session")
def gcs_shards(gcs_server: GcsServer, synth_shards: Path) -> str:
    """`synth_shards` uploaded to bucket `shards` of the emulator: its gs:// URL."""
    import gcsfs

    fs = gcsfs.GCSFileSystem(skip_instance_cache=True)
    fs.mkdir("shards")
    for path in sorted(synth_shards.glob("*")):
        if path.is_file():
            fs.put_file(str(path), f"shards/synth/{path.name}")
    return "gs://shards/synth"


@pytest.fixture(scope="session")
def s3_env() -> Iterator[None]:
    """Test credentials in the environment (never in YAML), restored afterwards."""
    with environment(S3_ENV):
        yield


@pytest.fixture(scope="session")
def http_shards(synth_shards: Path) -> Iterator[str]:
    """The URL of `synth_shards` served by a real HTTP server process."""
    server = HttpServer(synth_shards)
    yield server.url
    server.kill()


@pytest.fixture(scope="session")
def moto_s3(s3_env: None) -> Iterator[MotoServer]:
    server = MotoServer()
    yield server
    server.kill()


@pytest.fixture(scope="session")
def s3_shards(moto_s3: MotoServer, synth_shards: Path) -> str:
    """`synth_shards` uploaded to bucket `shards` of the moto server: its s3:// URL."""
    fs = moto_s3.filesystem()
    fs.mkdir("shards")
    for path in sorted(synth_shards.glob("*")):
        if path.is_file():
            fs.put_file(str(path), f"shards/synth/{path.name}")
    return "s3://shards/synth"


@pytest.fixture()
def servers() -> Iterator[dict]:
    """Start extra servers in a test: `servers["http"](directory)`, `servers["moto"](**env)`, `servers["port"]()` (a
    free port nobody listens on). Every server started through it is killed at the end of the test."""
    started: list = []

    def start(kind):
        def make(*args, **kwargs):
            server = kind(*args, **kwargs)
            started.append(server)
            return server
        return make

    yield {"http": start(HttpServer), "moto": start(MotoServer), "port": free_port}
    for server in started:
        server.kill()
