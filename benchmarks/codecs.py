"""JPEG decode and encode with torchvision.io, TorchCodec and Pillow, side by side, on this machine's CPU.

    python benchmarks/codecs.py [--coco ../shared/data/coco_tiny] [--repeats 5] [--json OUT]

Cases (all produce / consume uint8 `(3, H, W)` RGB tensors, the data path's format):
- decode_256: the 256-px quality-95 JPEGs a shard stores (made here from the COCO photos with Pillow, resized with
  the shard builder's antialiased resize, quality 95), bytes in memory -> tensor;
- decode_full: the full-size COCO photos (~640x480), bytes in memory -> tensor;
- jpeg_aug_256: the JPEG augmentation's round trip: a 256-px uint8 tensor -> JPEG at quality 60 -> tensor.
Every arm runs the same items in the same process, interleaved by repeat, on one torch thread; the table gives the
median over repeats of CPU ms per item (process CPU time, so other jobs on a shared machine do not count) and the
ratio to torchvision.io.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image

warnings.filterwarnings("ignore", category=DeprecationWarning)


def _pil_decode(data: bytes) -> torch.Tensor:
    with Image.open(io.BytesIO(data)) as image:
        return torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1)


def _pil_roundtrip(image: torch.Tensor, quality: int) -> torch.Tensor:
    buffer = io.BytesIO()
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(buffer, "JPEG", quality=quality)
    return _pil_decode(buffer.getvalue())


def arms() -> dict[str, tuple[Callable[[bytes], torch.Tensor], Callable[[torch.Tensor, int], torch.Tensor]]]:
    """name -> (decode bytes, JPEG round trip of a tensor) for each library importable here."""
    found = {}
    from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg

    found["torchvision.io"] = (
        lambda data: decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB),
        lambda image, q: decode_jpeg(encode_jpeg(image, quality=q), mode=ImageReadMode.RGB))
    try:
        from torchcodec.decoders import decode_jpeg as tc_decode
        from torchcodec.encoders import JpegEncoder

        found["torchcodec"] = (
            lambda data: tc_decode(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode="RGB"),
            lambda image, q: tc_decode(JpegEncoder(image).to_tensor(quality=q), mode="RGB"))
    except ImportError as err:
        print(f"torchcodec: not usable here ({err})", file=sys.stderr)
    found["pillow"] = (_pil_decode, _pil_roundtrip)
    return found


def inputs(coco: Path) -> dict[str, list]:
    photos = sorted((coco / "train2017").glob("*.jpg")) + sorted((coco / "val2017").glob("*.jpg"))
    if not photos:
        raise SystemExit(f"{coco}: no train2017/val2017 JPEGs")
    full = [p.read_bytes() for p in photos]
    small_bytes, small_tensors = [], []
    for data in full:
        image = torch.from_numpy(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).copy()).permute(2, 0, 1)
        small = torch.nn.functional.interpolate(image[None].float(), size=(256, 256), mode="bilinear",
                                                antialias=True, align_corners=False)[0].round().clamp(0, 255)
        small = small.to(torch.uint8).contiguous()  # (3, 256, 256)
        buffer = io.BytesIO()
        Image.fromarray(small.permute(1, 2, 0).numpy()).save(buffer, "JPEG", quality=95)
        small_bytes.append(buffer.getvalue())
        small_tensors.append(small)
    return {"decode_256": small_bytes, "decode_full": full, "jpeg_aug_256": small_tensors}


def cpu_ms_per_item(fn: Callable, items: list) -> float:
    start = time.process_time()
    for item in items:
        fn(item)
    return 1000 * (time.process_time() - start) / len(items)


def check_agreement(found: dict, data: dict) -> dict[str, float]:
    """Max absolute pixel difference of each arm's decode of the first full-size photo vs torchvision's."""
    reference = found["torchvision.io"][0](data["decode_full"][0]).int()
    return {name: float((decode(data["decode_full"][0]).int() - reference).abs().max()) for name, (decode, _) in
            found.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--coco", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "coco_tiny"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    found = arms()
    data = inputs(Path(args.coco))
    times: dict[str, dict[str, list[float]]] = {case: {name: [] for name in found} for case in data}
    for _ in range(args.repeats + 1):  # the first repeat warms up and is dropped
        for case, items in data.items():
            for name, (decode, roundtrip) in found.items():
                fn = decode if case.startswith("decode") else (lambda image, rt=roundtrip: rt(image, 60))
                times[case][name].append(cpu_ms_per_item(fn, items))
    import torchvision

    versions = {"torch": torch.__version__, "torchvision": torchvision.__version__,
                "pillow": Image.__version__}
    try:
        import torchcodec

        versions["torchcodec"] = torchcodec.__version__
    except ImportError:
        pass
    print(f"versions: {versions}; items: " + ", ".join(f"{k} {len(v)}" for k, v in data.items()))
    print(f"max |pixel difference| vs torchvision.io on a full-size photo: {check_agreement(found, data)}")
    print("| case | library | CPU ms/item (median) | ratio to torchvision.io |")
    print("|---|---|---:|---:|")
    table = {}
    for case in data:
        base = statistics.median(times[case]["torchvision.io"][1:])
        for name in found:
            value = statistics.median(times[case][name][1:])
            table.setdefault(case, {})[name] = value
            print(f"| {case} | {name} | {value:.3f} | {value / base:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"versions": versions, "cpu_ms_per_item": table, "all": times}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
