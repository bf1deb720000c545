from __future__ import annotations

import json

import pytest

from wam_pipe.data.coco_index import load_coco_index, sample_key
from wam_pipe.errors import UserError


def _write(path, data) -> None:
    path.write_text(json.dumps(data))


def test_images_sorted_with_their_annotations_and_unknown_ids_reported(tmp_path):
    data = {
        "images": [{"id": 30, "file_name": "c.jpg", "width": 4, "height": 3},
                   {"id": 5, "file_name": "a.jpg", "width": 8, "height": 6}],
        "annotations": [{"id": 1, "image_id": 5, "category_id": 2, "segmentation": [[0, 0, 1, 0, 1, 1]]},
                        {"id": 2, "image_id": 77, "category_id": 2, "segmentation": []},
                        {"id": 3, "image_id": 77, "category_id": 2, "segmentation": []}],
        "categories": [{"id": 2, "name": "dog", "supercategory": "animal"}],
    }
    _write(tmp_path / "a.json", data)
    index = load_coco_index(tmp_path / "a.json")
    assert [r.id for r in index.images] == [5, 30]
    assert [a["id"] for a in index.images[0].annotations()] == [1]
    assert index.images[1].annotations() == []  # kept, with an empty list
    assert index.annotation_count == 1
    assert index.unknown_image_ids == [77] and index.unknown_annotation_count == 2
    assert index.categories == [{"id": 2, "name": "dog", "supercategory": "animal"}]
    assert index.images[0].key == "000000000005" == sample_key(5)


def test_malformed_json_names_the_file_and_the_parser_message(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"images": [1, 2,')
    with pytest.raises(UserError) as err:
        load_coco_index(path)
    message = str(err.value)
    assert str(path) in message and "not valid JSON" in message and "line 1" in message
    assert len(err.value.lines) == 1


@pytest.mark.parametrize(
    "data, fragment",
    [
        ({"annotations": []}, "no `images` list"),
        ({"images": [{"id": 1, "file_name": "a.jpg", "width": 3}]}, "images[0].height"),
        ({"images": [{"id": 1, "file_name": "a.jpg", "width": 3, "height": 3}] * 2}, "duplicate image id 1"),
        ({"images": [], "annotations": [{"id": 1}]}, "annotations[0].image_id"),
    ],
)
def test_structural_problems_are_user_errors(tmp_path, data, fragment):
    _write(tmp_path / "x.json", data)
    with pytest.raises(UserError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        load_coco_index(tmp_path / "x.json")


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="annotation file not found"):
        load_coco_index(tmp_path / "nope.json")
