from __future__ import annotations

import os
from pathlib import Path

from wam_pipe.data.coco_index import CocoIndex, ImageRecord
from wam_pipe.data.shards.fingerprint import fingerprint_images, quick_folder_sha256


def _index(*names: str) -> CocoIndex:
    return CocoIndex(Path("ann.json"), [ImageRecord(i + 1, name, 4, 4) for i, name in enumerate(names)], [])


def _folder(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def test_listed_fingerprint_follows_names_and_sizes_not_mtimes(tmp_path):
    images = _folder(tmp_path / "images", {"a.jpg": b"aaa", "b.jpg": b"bb"})
    index = _index("a.jpg", "b.jpg")
    before = fingerprint_images(images, index)
    os.utime(images / "a.jpg", ns=(1, 1))
    assert fingerprint_images(images, index) == before
    (images / "a.jpg").write_bytes(b"aaaa")
    grown = fingerprint_images(images, index)
    assert grown.listed_sha256 != before.listed_sha256 and grown.listed_missing == 0
    (images / "b.jpg").unlink()
    gone = fingerprint_images(images, index)
    assert gone.listed_missing == 1 and gone.listed_sha256 not in (before.listed_sha256, grown.listed_sha256)


def test_unlisted_files_change_only_the_quick_folder_fingerprint(tmp_path):
    images = _folder(tmp_path / "images", {"a.jpg": b"aaa", "b.jpg": b"bb"})
    index = _index("b.jpg", "a.jpg")
    before = fingerprint_images(images, index)
    assert before.folder_sha256 == quick_folder_sha256(images) and before.files_not_in_json == 0
    _folder(images, {"extra.png": b"x", "notes.txt": b"y"})
    after = fingerprint_images(images, index)
    assert after.listed_sha256 == before.listed_sha256
    assert after.folder_sha256 == quick_folder_sha256(images) != before.folder_sha256
    assert after.files_not_in_json == 1  # image suffixes only


def test_names_in_subfolders_disable_the_quick_check(tmp_path):
    images = _folder(tmp_path / "images", {"train/a.jpg": b"aaa", "b.jpg": b"bb"})
    index = _index("train/a.jpg", "b.jpg")
    fingerprint = fingerprint_images(images, index)
    assert fingerprint.folder_sha256 is None and fingerprint.listed_missing == 0
    (images / "train" / "a.jpg").write_bytes(b"a")  # invisible to a top-level listing, seen by the listed hash
    assert fingerprint_images(images, index).listed_sha256 != fingerprint.listed_sha256


def test_a_directory_or_dangling_link_counts_as_missing(tmp_path):
    images = _folder(tmp_path / "images", {"a.jpg": b"aaa"})
    (images / "dir.jpg").mkdir()
    (images / "link.jpg").symlink_to(images / "nowhere.jpg")
    assert fingerprint_images(images, _index("a.jpg", "dir.jpg", "link.jpg", "absent.jpg")).listed_missing == 3
