from __future__ import annotations

import json

import pytest

from wam_pipe.data.coco_index import load_coco_index, sample_key
from wam_pipe.core.errors import UserError


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


IMAGE = {"id": 1, "file_name": "a.jpg", "width": 3, "height": 3}


def _ann(**changes) -> dict:
    return {"id": 1, "image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": [[0, 0, 1, 0, 1, 1]], **changes}


@pytest.mark.parametrize(
    "data, message",
    [
        ({"images": [{"id": 1, "file_name": "a.jpg", "width": 3}]},
         "images[0].height: expected an int, got nothing (missing or null)"),
        ({"images": [IMAGE] * 2}, "images[1].id: duplicate image id 1"),
        ({"images": [IMAGE, "b.jpg"]}, "images[1]: expected an object, got str 'b.jpg'"),
        ({"images": [{**IMAGE, "id": True}]}, "images[0].id: expected an int, got bool True"),
        ({"images": [{**IMAGE, "file_name": ""}]}, "images[0].file_name: expected a non-empty string, got str ''"),
        ({"images": [{**IMAGE, "file_name": "sub/../../x.jpg"}]}, "images[0].file_name: 'sub/../../x.jpg' points "
                                                                   "outside the image folder (give a path relative "
                                                                   "to it)"),
        ({"images": [{**IMAGE, "file_name": "/etc/x.jpg"}]}, "images[0].file_name: '/etc/x.jpg' points outside "
                                                              "the image folder (give a path relative to it)"),
        ({"images": [], "annotations": [{"id": 1}]},
         "annotations[0].image_id: expected an int, got nothing (missing or null)"),
        ({"images": [IMAGE], "annotations": 5}, "annotations: expected a list, got int 5"),
        ({"images": [IMAGE], "categories": {"id": 1}}, "categories: expected a list, got dict {'id': 1}"),
        ({"images": [IMAGE], "annotations": [_ann(iscrowd="yes")]},
         "annotations[0].iscrowd: expected 0 or 1, got str 'yes'"),
        ({"images": [IMAGE], "annotations": [_ann(iscrowd=2)]}, "annotations[0].iscrowd: expected 0 or 1, got int 2"),
        ({"images": [IMAGE], "annotations": [_ann(category_id=[1])]},
         "annotations[0].category_id: expected an int, got list [1]"),
        ({"images": [IMAGE], "annotations": [_ann(id="7")]}, "annotations[0].id: expected an int, got str '7'"),
        ({"images": [IMAGE], "annotations": [_ann(segmentation="abc")]},
         "annotations[0].segmentation: expected a list of polygons or an RLE object, got str 'abc'"),
        ({"images": [IMAGE], "categories": [{"id": 1, "name": "a"}, {"id": "2", "name": "b"}]},
         "categories[1].id: expected an int, got str '2'"),
        ({"images": [IMAGE], "categories": [{"id": 1}, {"id": 1}]}, "categories[1].id: duplicate category id 1"),
    ],
)
def test_structural_problems_are_one_line_user_errors(tmp_path, data, message):
    path = tmp_path / "x.json"
    _write(path, data)
    with pytest.raises(UserError) as err:
        load_coco_index(path)
    assert err.value.lines == [f"{path}: {message}; fix the annotation file"]


def test_a_file_without_an_images_list_is_not_coco(tmp_path):
    _write(tmp_path / "x.json", {"annotations": []})
    with pytest.raises(UserError, match=r"x\.json: not a COCO instances file \(no `images` list\)"):
        load_coco_index(tmp_path / "x.json")


def test_the_first_few_problems_are_reported_at_once(tmp_path):
    path = tmp_path / "x.json"
    annotations = [_ann(id=i, iscrowd="no") for i in range(7)] + [_ann(id=8, category_id=None)]
    _write(path, {"images": [{**IMAGE, "height": 2.5}], "annotations": annotations})
    with pytest.raises(UserError) as err:
        load_coco_index(path)
    assert err.value.lines[0] == f"{path}: images[0].height: expected an int, got float 2.5; fix the annotation file"
    assert [line.split(": ")[1] for line in err.value.lines[1:5]] == [f"annotations[{i}].iscrowd" for i in range(4)]
    assert err.value.lines[5:] == [f"{path}: ... and 4 more problems"]


def test_lenient_but_valid_values_are_accepted(tmp_path):
    annotations = [_ann(id=1, iscrowd=True), _ann(id=2, iscrowd=1.0), _ann(id=3, segmentation=None),
                   _ann(id=4, segmentation={"size": [3, 3], "counts": "9"}), {"id": 5, "image_id": 1, "category_id": 1}]
    _write(tmp_path / "x.json", {"images": [IMAGE], "annotations": annotations, "categories": None})
    index = load_coco_index(tmp_path / "x.json")
    assert [a["iscrowd"] for a in index.images[0].annotations()] == [1, 1, 0, 0, 0]
    assert index.categories == [] and index.annotation_count == 5


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="annotation file not found"):
        load_coco_index(tmp_path / "nope.json")
