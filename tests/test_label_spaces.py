"""Label spaces: every built-in reads and writes its own files, the readers, the maps, and bad input refused."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from segkit import labels as L
from segkit.errors import ConfigError, DataError
from segkit.metrics import ConfusionMatrix


def _all_values(space: L.LabelSpace) -> np.ndarray:
    """Every file value of the space (each class's first value, then each ignore value), as a 2-row image."""
    values = [c.values[0] for c in space.classes] + list(space.ignore)
    row = np.array(values, dtype=np.uint16 if max(values) > 255 else np.uint8)
    return np.stack([row, row[::-1]])


@pytest.mark.parametrize("name", L.BUILTIN_SPACES)
def test_builtin_round_trips_value_index_value(name):
    space = L.builtin_space(name)
    values = _all_values(space)
    index = space.to_index(values)
    n = space.num_classes
    assert index.dtype == np.uint8
    assert index[0, :n].tolist() == list(range(n))
    assert (index[0, n:] == L.IGNORE_INDEX).all()
    back = space.to_values(index)
    first_ignore = space.ignore[0] if space.ignore else L.IGNORE_INDEX
    expected = np.where(index == L.IGNORE_INDEX, first_ignore, values)
    np.testing.assert_array_equal(back, expected)
    np.testing.assert_array_equal(space.to_index(back), index)


@pytest.mark.parametrize("name", L.BUILTIN_SPACES)
def test_builtin_truth_as_predictions_scores_one(name):
    space = L.builtin_space(name)
    truth = space.to_index(_all_values(space))
    pred = space.to_index(space.to_values(truth))  # truth written as the data set's files, read back
    cm = ConfusionMatrix(space.num_classes)
    cm.update(torch.from_numpy(pred.astype(np.int64)), torch.from_numpy(truth.astype(np.int64)))
    assert cm.miou() == pytest.approx(1.0)


@pytest.mark.parametrize("name", L.BUILTIN_SPACES)
def test_builtin_colours_round_trip_when_distinct(name):
    space = L.builtin_space(name)
    index = space.to_index(_all_values(space))
    if len({tuple(c) for c in space.palette.tolist()}) < space.num_classes:  # Mapillary v2.0 and ADE20K share colours
        with pytest.raises(ConfigError, match="same colour"):
            space.colors_to_index(space.to_color(index))
        return
    np.testing.assert_array_equal(space.colors_to_index(space.to_color(index)), index)


def test_builtin_sizes_and_known_answers():
    sizes = {n: L.builtin_space(n).num_classes for n in L.BUILTIN_SPACES}
    assert sizes == {
        "cityscapes": 19,
        "camvid": 11,
        "camvid-32": 31,
        "mapillary-v1.2": 65,
        "mapillary-v2.0": 123,
        "ade20k": 150,
        "pascal-voc": 21,
        "bdd100k": 19,
    }
    camvid = L.builtin_space("camvid")
    assert camvid.names[:4] == ("Sky", "Building", "Pole", "Road") and camvid.names[-1] == "Bicyclist"
    assert camvid.to_index(np.array([[0, 10, 11]], np.uint8)).tolist() == [[0, 10, 255]]
    ade = L.builtin_space("ade20k")
    assert ade.to_index(np.array([[0, 1, 150]], np.uint8)).tolist() == [[255, 0, 149]]
    assert ade.names[0] == "wall" and ade.names[149] == "flag" and ade.to_values(np.array([255])).tolist() == [0]
    mv12 = L.builtin_space("mapillary-v1.2")
    assert mv12.to_index(np.array([[0, 64, 65]], np.uint8)).tolist() == [[0, 64, 255]]
    assert mv12.names[19] == "human--person" and mv12.to_values(np.array([255])).tolist() == [65]
    mv20 = L.builtin_space("mapillary-v2.0")
    assert mv20.to_index(np.array([[123]], np.uint8)).tolist() == [[255]] and mv20.names[-1] == "void--static"
    voc = L.builtin_space("pascal-voc")
    assert voc.names[15] == "person" and tuple(voc.palette[15]) == (192, 128, 128)
    assert tuple(voc.palette[1]) == (128, 0, 0) and voc.ignore_color == (224, 224, 192)
    bdd = L.builtin_space("bdd100k")
    assert bdd.names == L.CLASS_NAMES and bdd.to_index(np.array([[0, 18, 255]], np.uint8)).tolist() == [[0, 18, 255]]


def test_cityscapes_space_is_the_official_table():
    cs = L.builtin_space("cityscapes")
    assert cs is L.CITYSCAPES and cs.names == L.CLASS_NAMES and cs.num_classes == L.NUM_CLASSES
    ids = np.arange(L.MAX_LABEL_ID + 1, dtype=np.uint8)
    np.testing.assert_array_equal(cs.to_index(ids), L.LABEL_TO_TRAIN[ids])
    index = np.array(list(range(19)) + [255], dtype=np.uint8)
    np.testing.assert_array_equal(cs.to_values(index), L.TRAIN_TO_LABEL[index])
    np.testing.assert_array_equal(cs.to_color(index), L.TRAIN_COLORS[index])
    np.testing.assert_array_equal(cs.palette, L.PALETTE)
    assert [cs.names[i] for i in L.THIN_CLASSES] == [
        "pole", "traffic light", "traffic sign", "person", "rider", "motorcycle", "bicycle"
    ]  # fmt: skip


def test_values_outside_the_space_are_refused_with_counts_and_fix():
    label = np.zeros((4, 5), np.uint8)
    label[0, :3] = 40
    label[1, 0] = 200
    with pytest.raises(DataError) as err:
        L.builtin_space("cityscapes").to_index(label, where="a/b_labelIds.png")
    msg = str(err.value)
    assert "a/b_labelIds.png" in msg and "40 (3 px)" in msg and "200 (1 px)" in msg
    assert "--classes FILE" in msg and "ignore" in msg


def test_sixteen_bit_values():
    space = L.LabelSpace(
        "wide", (L.ClassInfo("a", (1000,), (1, 2, 3)), L.ClassInfo("b", (40000, 7), (4, 5, 6))), ignore=(65535,)
    )
    label = np.array([[1000, 40000, 7, 65535]], dtype=np.uint16)
    index = space.to_index(label)
    assert index.tolist() == [[0, 1, 1, 255]] and index.dtype == np.uint8
    out = space.to_values(index)
    assert out.dtype == np.uint16 and out.tolist() == [[1000, 40000, 40000, 65535]]
    with pytest.raises(DataError, match="1001"):
        space.to_index(np.array([[1001]], np.uint16))


def test_colour_masks_exact_and_unknown_colours_counted():
    space = L.builtin_space("camvid-32")
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 0] = (64, 128, 64)  # Animal
    rgb[0, 1] = (64, 192, 0)  # Wall
    rgb[0, 2] = (0, 0, 0)  # Void
    rgb[1] = (128, 64, 128)  # Road
    assert space.colors_to_index(rgb).tolist() == [[0, 30, 255], [17, 17, 17]]
    rgb[1, :2] = (1, 2, 3)
    with pytest.raises(DataError) as err:
        space.colors_to_index(rgb, where="x_L.png")
    assert "x_L.png" in str(err.value) and "(1, 2, 3) (2 px)" in str(err.value)


def test_to_dict_is_plain_and_round_trips(tmp_path):
    for name in L.BUILTIN_SPACES:
        space = L.builtin_space(name)
        d = json.loads(json.dumps(space.to_dict()))
        assert L.LabelSpace.from_dict(d) == space
    path = tmp_path / "ckpt.pt"
    torch.save({"space": L.builtin_space("camvid").to_dict()}, path)
    loaded = torch.load(path, weights_only=True)
    assert L.LabelSpace.from_dict(loaded["space"]) == L.builtin_space("camvid")
    with pytest.raises(ConfigError, match="not a label space"):
        L.LabelSpace.from_dict({"name": "x"})


def test_equality_is_by_content_not_source():
    a = L.builtin_space("camvid")
    b = L.LabelSpace.from_dict({**a.to_dict(), "source": "/some/file.yaml"})
    assert a == b and hash(a) == hash(b)
    assert a != L.builtin_space("camvid-32")


# -- readers -----------------------------------------------------------------------------------------

ISSUE_EXAMPLE = """\
name: my-streets
classes:            # order = class index
  - {name: road, id: 7, color: [128, 64, 128]}
  - {name: car,  id: [26, 27], color: [0, 0, 142]}
ignore: [0, 255]    # values never evaluated
"""


def test_reads_segkit_yaml_the_issue_example(tmp_path):
    path = tmp_path / "classes.yaml"
    path.write_text(ISSUE_EXAMPLE)
    space = L.read_space_file(path)
    assert space.name == "my-streets" and space.names == ("road", "car") and space.source == str(path)
    assert space.to_index(np.array([[7, 26, 27, 0, 255]], np.uint8)).tolist() == [[0, 1, 1, 255, 255]]
    assert tuple(space.palette[1]) == (0, 0, 142) and not space.color_coded


def test_reads_segkit_json_positions_and_colour_coded(tmp_path):
    path = tmp_path / "classes.json"
    path.write_text(json.dumps({"classes": [{"name": "bg"}, {"name": "crack"}]}))
    space = L.read_space_file(path)
    assert space.name == "classes" and space.to_index(np.array([[0, 1]], np.uint8)).tolist() == [[0, 1]]
    path.write_text(
        json.dumps({"name": "cc", "classes": [{"name": "a", "color": [9, 9, 9]}, {"name": "b", "color": [1, 1, 1]}]})
    )
    space = L.read_space_file(path)
    assert space.color_coded
    assert space.colors_to_index(np.array([[[1, 1, 1], [9, 9, 9]]], np.uint8)).tolist() == [[1, 0]]


KAGGLE_CAMVID = (
    "name,r,g,b\n"
    + "\n".join(
        f"{line.rsplit(maxsplit=3)[0]},{','.join(line.rsplit(maxsplit=3)[1:])}"
        for line in L.CAMVID_32.strip().splitlines()[:30]
    )
    + "\nVoid,0, 0, 0\nWall,64, 192, 0\n"
)  # Kaggle's order: Void before Wall, spaces after commas


def test_reads_kaggle_class_dict(tmp_path):
    path = tmp_path / "class_dict.csv"
    path.write_text(KAGGLE_CAMVID)
    space = L.read_space_file(path)
    assert space == L.builtin_space("camvid-32") and space.source == str(path)
    path.write_text("name,r,g,b\nbackground,0,0,0\nleaf,0,255,0\n")
    space = L.read_space_file(path)
    assert space.name == "class_dict" and space.names == ("background", "leaf") and space.color_coded


def _mapillary_config(labels: list[tuple[str, tuple, bool]]) -> dict:
    return {
        "labels": [
            {"name": n, "readable": n.title(), "color": list(c), "evaluate": e, "instances": False}
            for n, c, e in labels
        ],
        "version": 1.2,
    }


def test_reads_mapillary_config(tmp_path):
    path = tmp_path / "config_v1.2.json"
    labels = [("animal--bird", (165, 42, 42), True), ("nature--sky", (70, 130, 180), True)]
    path.write_text(json.dumps(_mapillary_config(labels + [("void--unlabeled", (0, 0, 0), False)])))
    space = L.read_space_file(path)
    assert space.name == "mapillary-v1.2" and space.names == ("animal--bird", "nature--sky")
    assert space.to_index(np.array([[0, 1, 2]], np.uint8)).tolist() == [[0, 1, 255]]


def test_a_full_mapillary_config_equals_the_builtin(tmp_path):
    builtin = L.builtin_space("mapillary-v1.2")
    rows = [(c.name, c.color, True) for c in builtin.classes] + [("void--unlabeled", (0, 0, 0), False)]
    path = tmp_path / "config_v1.2.json"
    path.write_text(json.dumps(_mapillary_config(rows)))
    assert L.read_space_file(path) == builtin


@pytest.mark.parametrize(
    ("text", "suffix", "expected"),
    [
        ("classes:\n  - {name: a, id: 1}\n  - {name: a, id: 2}\n", ".yaml", "more than once"),
        ("classes:\n  - {name: a, id: 1}\n  - {name: b, id: 1}\n", ".yaml", "one file value to several"),
        ("classes:\n  - {name: a, color: [1,2,3]}\n  - {name: b, color: [1,2,3]}\n", ".yaml", "colours"),
        ("classes:\n  - {id: 1}\n", ".yaml", "has no `name`"),
        ("name: x\n", ".yaml", "no `classes:` list"),
        ("classes:\n  - {name: a, id: 70000}\n", ".yaml", "0..65535"),
        ("classes:\n  - {name: a, id: 1}\nignore: [1]\n", ".yaml", "both trains and ignores"),
        ("classes: [{name: a, colour: [1, 2, 3]}]\n", ".yaml", "unknown fields"),
        ("classes: [\n", ".yaml", "not valid YAML"),
        ('{"classes": [', ".json", "not valid JSON"),
        ("label,red,green,blue\nx,1,2,3\n", ".csv", "name,r,g,b"),
        ("name,r,g,b\nx,1,2\n", ".csv", "line 2"),
        ("name,r,g,b\nx,1,2,3\ny,1,2,3\n", ".csv", "colours"),
    ],
)
def test_bad_space_files_are_refused(tmp_path, text, suffix, expected):
    path = tmp_path / f"classes{suffix}"
    path.write_text(text)
    with pytest.raises(ConfigError, match=expected) as err:
        L.read_space_file(path)
    assert str(path) in str(err.value)


def test_more_than_255_classes_refused(tmp_path):
    path = tmp_path / "many.json"
    path.write_text(json.dumps({"classes": [{"name": f"c{i}", "id": i} for i in range(256)]}))
    with pytest.raises(ConfigError, match="256 classes; segkit trains at most 255"):
        L.read_space_file(path)


def test_unknown_space_name_suggests(tmp_path):
    with pytest.raises(ConfigError, match="did you mean 'camvid'"):
        L.load_space("camvd")


# -- where a run's space comes from -----------------------------------------------------------------


def test_resolve_space_first_match_wins(tmp_path):
    (tmp_path / "classes.yaml").write_text(ISSUE_EXAMPLE)
    space, where = L.resolve_space("camvid", tmp_path, "ade20k")
    assert space.name == "camvid" and "--classes camvid" in where
    space, where = L.resolve_space("", tmp_path, "ade20k")
    assert space.name == "my-streets" and "found beside the data" in where and "classes.yaml" in where
    (tmp_path / "classes.yaml").unlink()
    space, where = L.resolve_space("", tmp_path, "ade20k")
    assert space.name == "ade20k" and "layout" in where
    space, where = L.resolve_space("", tmp_path, None)
    assert space.name == "cityscapes" and "default" in where


def test_resolve_space_picks_the_mapillary_version_with_labels(tmp_path):
    config = json.dumps(_mapillary_config([("a", (1, 1, 1), True), ("void--unlabeled", (0, 0, 0), False)]))
    for v in ("1.2", "2.0"):
        (tmp_path / f"config_v{v}.json").write_text(config)
    (tmp_path / "training" / "v1.2" / "labels").mkdir(parents=True)
    space, where = L.resolve_space("", tmp_path, None)
    assert space.name == "mapillary-v1.2" and "labels folder" in where and "config_v2.0.json" in where
    (tmp_path / "training" / "v2.0" / "labels").mkdir(parents=True)
    assert L.resolve_space("", tmp_path, None)[0].name == "mapillary-v2.0"


# -- maps between spaces ----------------------------------------------------------------------------


def _map_names(m: L.ClassMap, names: list[str]) -> list[str]:
    out = m.apply(np.array([m.source.index_of(n) for n in names], np.uint8))
    return [m.target.names[i] if i != L.IGNORE_INDEX else "ignore" for i in out.tolist()]


def test_cityscapes_to_camvid_known_answers():
    m = L.builtin_map("cityscapes->camvid")
    assert (
        _map_names(m, ["car", "truck", "bus", "train", "rider", "motorcycle", "bicycle"])
        == ["Car"] * 4 + ["Bicyclist"] * 3
    )
    assert _map_names(m, ["building", "wall", "traffic light", "traffic sign", "vegetation", "terrain"]) == [
        "Building", "Building", "SignSymbol", "SignSymbol", "Tree", "Tree"
    ]  # fmt: skip
    assert _map_names(m, ["person", "sidewalk", "road", "sky", "pole", "fence"]) == [
        "Pedestrian", "Pavement", "Road", "Sky", "Pole", "Fence"
    ]  # fmt: skip
    assert m.apply(np.array([255], np.uint8)).tolist() == [255]
    assert sorted(m.sources_of(m.target.index_of("Car"))) == [13, 14, 15, 16]
    assert L.find_class_map(L.builtin_space("camvid"), L.builtin_space("cityscapes")) == m


def test_mapillary_to_cityscapes_known_answers():
    m = L.builtin_map("mapillary->cityscapes")
    riders = ["human--rider--bicyclist", "human--rider--motorcyclist", "human--rider--other-rider"]
    assert _map_names(m, riders) == ["rider"] * 3
    assert _map_names(m, ["construction--flat--road", "marking--general", "construction--barrier--curb"]) == [
        "road", "road", "sidewalk"
    ]  # fmt: skip
    assert _map_names(m, ["animal--bird", "object--vehicle--caravan", "void--ego-vehicle"]) == ["ignore"] * 3
    assert set(m.lut[: m.source.num_classes].tolist()) == set(range(19)) | {255}  # every Cityscapes class reached


def test_class_map_file(tmp_path):
    (tmp_path / "mine.yaml").write_text(ISSUE_EXAMPLE)
    path = tmp_path / "map.yaml"
    path.write_text("from: camvid\nto: mine.yaml\nmap: {Road: road, Car: car, Sky: null}\n")
    m = L.load_class_map(str(path))
    assert m.target.name == "my-streets" and _map_names(m, ["Road", "Car", "Sky", "Tree"]) == [
        "road", "car", "ignore", "ignore"
    ]  # fmt: skip
    path.write_text("from: camvid\nto: mine.yaml\nmap: {Roda: road}\n")
    with pytest.raises(ConfigError, match="did you mean 'Road'"):
        L.load_class_map(str(path))
    with pytest.raises(ConfigError, match="cityscapes->camvid"):
        L.load_class_map("nope")


def test_bridge_between_model_and_data_spaces():
    cs, camvid = L.builtin_space("cityscapes"), L.builtin_space("camvid")
    same = L.bridge(camvid, camvid)
    assert same.space == camvid and same.class_map is None
    b = L.bridge(cs, camvid)  # a Cityscapes model on CamVid labels: its predictions are mapped
    assert b.space == camvid and b.pred_map.name == "cityscapes->camvid" and b.target_map is None
    b = L.bridge(camvid, cs)  # a CamVid model on Cityscapes labels: the labels are mapped
    assert b.space == camvid and b.target_map.name == "cityscapes->camvid" and b.pred_map is None
    with pytest.raises(ConfigError, match="--class-map"):
        L.bridge(L.builtin_space("ade20k"), camvid)


def test_builtin_map_follows_a_mapillary_space_read_from_its_own_config(tmp_path):
    builtin = L.builtin_space("mapillary-v1.2")
    rows = [(c.name, c.color, c.name != "animal--bird") for c in builtin.classes]  # bird not evaluated here
    path = tmp_path / "config_v1.2.json"
    path.write_text(json.dumps(_mapillary_config(rows + [("void--unlabeled", (0, 0, 0), False)])))
    own = L.read_space_file(path)
    assert own != builtin and own.num_classes == builtin.num_classes - 1
    m = L.find_class_map(own, L.builtin_space("cityscapes"))
    assert m.source == own and _map_names(m, ["human--rider--bicyclist", "nature--sky"]) == ["rider", "sky"]
    road_value = np.array([[13]], np.uint8)  # construction--flat--road's position in the config
    assert m.target.names[m.apply(own.to_index(road_value))[0, 0]] == "road"


def test_a_space_without_ignored_values_reads_back_what_it_writes_for_ignored_pixels(tmp_path):
    """`to_values` writes 255 for an ignored pixel of a space that lists no ignored value; reading it
    back must give ignore, while any other value outside the space is still refused."""
    path = tmp_path / "classes.yaml"
    path.write_text("name: two\nclasses:\n  - {name: road}\n  - {name: car}\n")
    space = L.read_space_file(path)
    index = np.array([[0, 1, 255]], np.uint8)
    written = space.to_values(index)
    assert written.tolist() == [[0, 1, 255]] and space.to_index(written).tolist() == [[0, 1, 255]]
    with pytest.raises(DataError, match="254"):
        space.to_index(np.array([[0, 254]], np.uint8))
    listed = L.read_space_file(
        _write(tmp_path / "listed.yaml", "name: t\nclasses: [{name: a}, {name: b}]\nignore: [9]\n")
    )
    with pytest.raises(DataError, match="255"):  # a space that lists its ignored values means exactly those
        listed.to_index(np.array([[255]], np.uint8))


def _write(path, text):
    path.write_text(text)
    return path


def _scene(space: L.LabelSpace) -> np.ndarray:
    """(96, 128) class indices: sky, building, car, a 2-pixel pole, road, an ignored corner."""
    index = np.full((96, 128), space.names.index("Road"), np.uint8)
    index[:40] = space.names.index("Sky")
    index[40:70, :60] = space.names.index("Building")
    index[50:80, 70:110] = space.names.index("Car")
    index[20:80, 64:66] = space.names.index("Column_Pole")
    index[80:, :30] = 255
    return index


def test_lossy_colour_masks_decode_by_context_far_pixels_counted(tmp_path):
    """A JPEG'd or resized colour mask is decoded by context; pixels far from every colour are ignored up to
    MAX_UNDECIDED_SHARE and refused over it, counted; a lossless PNG with an unknown colour stays refused."""
    from segkit.data.cityscapes import MAX_UNDECIDED_SHARE, read_label

    space = L.builtin_space("camvid-32")
    truth = _scene(space)
    rgb = space.to_color(truth)
    jpeg = tmp_path / "f_L.jpg"

    def write(mask, path=jpeg):
        ok = cv2.imwrite(str(path), np.ascontiguousarray(mask[..., ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 75])
        assert ok
        return path

    write(rgb)
    with pytest.raises(DataError):  # JPEG moved colours: not exact any more
        space.colors_to_index(cv2.imread(str(jpeg))[..., ::-1])
    assert (read_label(jpeg, "color", space=space) == truth).mean() > 0.99
    resized = cv2.resize(
        cv2.resize(rgb, (256, 192), interpolation=cv2.INTER_LINEAR), (128, 96), interpolation=cv2.INTER_AREA
    )
    assert (read_label(write(resized, tmp_path / "r_L.png"), "color", space=space) == truth).mean() > 0.97

    small = rgb.copy()
    small[2:8, 2:8] = (255, 0, 255)  # 36 px, 0.3%: far from every colour, ignored
    got = read_label(write(small), "color", space=space)
    assert (got[2:8, 2:8] == 255).all() and (got[10:] == truth[10:]).mean() > 0.99
    big = rgb.copy()
    big[:30, :60] = (255, 0, 255)  # 1,800 px, 14.6%: refused, counted
    with pytest.raises(DataError) as err:
        read_label(write(big), "color", space=space)
    message = str(err.value)
    assert "f_L.jpg" in message and "14." in message and f"{100 * MAX_UNDECIDED_SHARE:g}%" in message
    assert "(255, 0, 25" in message and "--classes FILE" in message

    exact = rgb.copy()
    exact[:4, :4] = (1, 2, 3)  # a lossless mask with a colour the space lacks: refused, not decoded
    with pytest.raises(DataError, match=r"\(1, 2, 3\) \(16 px\)"):
        read_label(write(exact, tmp_path / "e_L.png"), "color", space=space)
