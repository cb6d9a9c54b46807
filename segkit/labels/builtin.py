"""The built-in label spaces, one entry each in `BUILTIN_SPACES`, and their tables as data.

`builtin_space(name)` builds a space once. The tables are facts of the data sets: class names,
the order that gives their file values, and the colours their tools draw them in.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from segkit.errors import ConfigError, did_you_mean
from segkit.labels.cityscapes import CITYSCAPES, cityscapes_space
from segkit.labels.space import ClassInfo, LabelSpace


def _from_table(name: str, table: str, first_value: int = 0, ignore: tuple[int, ...] = ()) -> LabelSpace:
    """A space from 'name r g b' lines; the file value of line i is `first_value + i`."""
    classes, skipped = [], list(ignore)
    for i, line in enumerate(table.strip().splitlines()):
        cls, r, g, b = line.rsplit(maxsplit=3)
        classes.append(ClassInfo(cls, (first_value + i,), (int(r), int(g), int(b))))
    return LabelSpace(name, tuple(classes), tuple(skipped))


def _bdd100k() -> LabelSpace:
    cs = builtin_space("cityscapes")
    return LabelSpace("bdd100k", tuple(ClassInfo(c.name, (i,), c.color) for i, c in enumerate(cs.classes)), (255,))


def _camvid() -> LabelSpace:
    return LabelSpace("camvid", _from_table("camvid", CAMVID_11).classes, (11,), ((0, 0, 0),))


def _camvid_32() -> LabelSpace:
    base = _from_table("camvid-32", CAMVID_32)
    return LabelSpace(base.name, base.classes, (), ((0, 0, 0),), color_coded=True)


def _mapillary(name: str, table: str) -> LabelSpace:
    rows = table.strip().splitlines()
    void = [i for i, line in enumerate(rows) if line.split()[0] == "void--unlabeled"]
    kept = "\n".join(line for i, line in enumerate(rows) if i not in void)
    base = _from_table(name, kept)
    # file value = position in the data set's config; the unlabeled entry (the last) is not evaluated
    classes = tuple(ClassInfo(c.name, (i if i < void[0] else i + 1,), c.color) for i, c in enumerate(base.classes))
    return LabelSpace(name, classes, tuple(void))


def _ade20k() -> LabelSpace:
    return _from_table("ade20k", ADE20K_150, first_value=1, ignore=(0,))


def voc_palette(n: int = 256) -> np.ndarray:
    """Pascal VOC's palette: colour i spreads the bits of i over r, g, b, high bits first. (n, 3) uint8."""
    out = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, rgb = i, [0, 0, 0]
        for bit in range(8):
            for ch in range(3):
                rgb[ch] |= ((c >> ch) & 1) << (7 - bit)
            c >>= 3
        out[i] = rgb
    return out


def _pascal_voc() -> LabelSpace:
    pal = voc_palette()
    classes = tuple(ClassInfo(n, (i,), tuple(int(x) for x in pal[i])) for i, n in enumerate(VOC_21.split()))
    return LabelSpace("pascal-voc", classes, (255,), (tuple(int(x) for x in pal[255]),))  # type: ignore[arg-type]


BUILTIN_SPACES: dict[str, Callable[[], LabelSpace]] = {
    "cityscapes": cityscapes_space,  # labelIds 0..33 -> 19 classes (the official table, cityscapes.py)
    "camvid": _camvid,  # SegNet's release: values 0..10, 11 = void
    "camvid-32": _camvid_32,  # the original CamVid / Kaggle's class_dict.csv: colour masks, Void ignored
    "mapillary-v1.2": lambda: _mapillary("mapillary-v1.2", MAPILLARY_V12),  # 66 labels, 65 evaluated
    "mapillary-v2.0": lambda: _mapillary("mapillary-v2.0", MAPILLARY_V20),  # 124 labels, 123 evaluated
    "ade20k": _ade20k,  # SceneParsing: file value v -> class v-1, 0 = not evaluated
    "pascal-voc": _pascal_voc,  # 21 classes incl. background, 255 = border
    "bdd100k": _bdd100k,  # Cityscapes' 19 classes written as trainIds 0..18, 255 ignored
}
# Seeded with the one cityscapes object `CITYSCAPES` names, so that both names share it and its lookup tables.
_BUILT: dict[str, LabelSpace] = {"cityscapes": CITYSCAPES}


def builtin_space(name: str) -> LabelSpace:
    """A built-in space by name (built once)."""
    if name not in BUILTIN_SPACES:
        raise ConfigError(f"no built-in label space {name!r}{did_you_mean(name, BUILTIN_SPACES)}")
    if name not in _BUILT:
        _BUILT[name] = BUILTIN_SPACES[name]()
    return _BUILT[name]


# -- the built-in spaces' tables: facts of the data sets ("name r g b", one class a line) -------------

# SegNet's CamVid release: values 0..10 in this order, 11 = void.
CAMVID_11 = """
Sky 128 128 128
Building 128 0 0
Pole 192 192 128
Road 128 64 128
Pavement 0 0 192
Tree 128 128 0
SignSymbol 192 128 128
Fence 64 64 128
Car 64 0 128
Pedestrian 64 64 0
Bicyclist 0 128 192
"""
# The original CamVid's 32 colour-coded labels (Kaggle's class_dict.csv) less Void (0, 0, 0), which is ignored.
CAMVID_32 = """
Animal 64 128 64
Archway 192 0 128
Bicyclist 0 128 192
Bridge 0 128 64
Building 128 0 0
Car 64 0 128
CartLuggagePram 64 0 192
Child 192 128 64
Column_Pole 192 192 128
Fence 64 64 128
LaneMkgsDriv 128 0 192
LaneMkgsNonDriv 192 0 64
Misc_Text 128 128 64
MotorcycleScooter 192 0 192
OtherMoving 128 64 64
ParkingBlock 64 192 128
Pedestrian 64 64 0
Road 128 64 128
RoadShoulder 128 128 192
Sidewalk 0 0 192
SignSymbol 192 128 128
Sky 128 128 128
SUVPickupTruck 64 128 192
TrafficCone 0 0 64
TrafficLight 0 64 64
Train 192 64 128
Tree 128 128 0
Truck_Bus 192 128 192
Tunnel 64 0 64
VegetationMisc 192 192 0
Wall 64 192 0
"""
VOC_21 = (
    "background aeroplane bicycle bird boat bottle bus car cat chair cow "
    "diningtable dog horse motorbike person pottedplant sheep sofa train tvmonitor"
)
# Mapillary Vistas v1.2 (config_v1.2.json): file value = position; void--unlabeled is not evaluated.
MAPILLARY_V12 = """
animal--bird 165 42 42
animal--ground-animal 0 192 0
construction--barrier--curb 196 196 196
construction--barrier--fence 190 153 153
construction--barrier--guard-rail 180 165 180
construction--barrier--other-barrier 90 120 150
construction--barrier--wall 102 102 156
construction--flat--bike-lane 128 64 255
construction--flat--crosswalk-plain 140 140 200
construction--flat--curb-cut 170 170 170
construction--flat--parking 250 170 160
construction--flat--pedestrian-area 96 96 96
construction--flat--rail-track 230 150 140
construction--flat--road 128 64 128
construction--flat--service-lane 110 110 110
construction--flat--sidewalk 244 35 232
construction--structure--bridge 150 100 100
construction--structure--building 70 70 70
construction--structure--tunnel 150 120 90
human--person 220 20 60
human--rider--bicyclist 255 0 0
human--rider--motorcyclist 255 0 100
human--rider--other-rider 255 0 200
marking--crosswalk-zebra 200 128 128
marking--general 255 255 255
nature--mountain 64 170 64
nature--sand 230 160 50
nature--sky 70 130 180
nature--snow 190 255 255
nature--terrain 152 251 152
nature--vegetation 107 142 35
nature--water 0 170 30
object--banner 255 255 128
object--bench 250 0 30
object--bike-rack 100 140 180
object--billboard 220 220 220
object--catch-basin 220 128 128
object--cctv-camera 222 40 40
object--fire-hydrant 100 170 30
object--junction-box 40 40 40
object--mailbox 33 33 33
object--manhole 100 128 160
object--phone-booth 142 0 0
object--pothole 70 100 150
object--street-light 210 170 100
object--support--pole 153 153 153
object--support--traffic-sign-frame 128 128 128
object--support--utility-pole 0 0 80
object--traffic-light 250 170 30
object--traffic-sign--back 192 192 192
object--traffic-sign--front 220 220 0
object--trash-can 140 140 20
object--vehicle--bicycle 119 11 32
object--vehicle--boat 150 0 255
object--vehicle--bus 0 60 100
object--vehicle--car 0 0 142
object--vehicle--caravan 0 0 90
object--vehicle--motorcycle 0 0 230
object--vehicle--on-rails 0 80 100
object--vehicle--other-vehicle 128 64 64
object--vehicle--trailer 0 0 110
object--vehicle--truck 0 0 70
object--vehicle--wheeled-slow 0 0 192
void--car-mount 32 32 32
void--ego-vehicle 120 10 10
void--unlabeled 0 0 0
"""
# Mapillary Vistas v2.0 (config_v2.0.json): file value = position; void--unlabeled is not evaluated.
MAPILLARY_V20 = """
animal--bird 165 42 42
animal--ground-animal 0 192 0
construction--barrier--ambiguous 250 170 31
construction--barrier--concrete-block 250 170 32
construction--barrier--curb 196 196 196
construction--barrier--fence 190 153 153
construction--barrier--guard-rail 180 165 180
construction--barrier--other-barrier 90 120 150
construction--barrier--road-median 250 170 33
construction--barrier--road-side 250 170 34
construction--barrier--separator 128 128 128
construction--barrier--temporary 250 170 35
construction--barrier--wall 102 102 156
construction--flat--bike-lane 128 64 255
construction--flat--crosswalk-plain 140 140 200
construction--flat--curb-cut 170 170 170
construction--flat--driveway 250 170 36
construction--flat--parking 250 170 160
construction--flat--parking-aisle 250 170 37
construction--flat--pedestrian-area 96 96 96
construction--flat--rail-track 230 150 140
construction--flat--road 128 64 128
construction--flat--road-shoulder 110 110 110
construction--flat--service-lane 110 110 110
construction--flat--sidewalk 244 35 232
construction--flat--traffic-island 128 196 128
construction--structure--bridge 150 100 100
construction--structure--building 70 70 70
construction--structure--garage 150 150 150
construction--structure--tunnel 150 120 90
human--person--individual 220 20 60
human--person--person-group 220 20 60
human--rider--bicyclist 255 0 0
human--rider--motorcyclist 255 0 100
human--rider--other-rider 255 0 200
marking--continuous--dashed 255 255 255
marking--continuous--solid 255 255 255
marking--continuous--zigzag 250 170 29
marking--discrete--ambiguous 250 170 28
marking--discrete--arrow--left 250 170 26
marking--discrete--arrow--other 250 170 25
marking--discrete--arrow--right 250 170 24
marking--discrete--arrow--split-left-or-straight 250 170 22
marking--discrete--arrow--split-right-or-straight 250 170 21
marking--discrete--arrow--straight 250 170 20
marking--discrete--crosswalk-zebra 255 255 255
marking--discrete--give-way-row 250 170 19
marking--discrete--give-way-single 250 170 18
marking--discrete--hatched--chevron 250 170 12
marking--discrete--hatched--diagonal 250 170 11
marking--discrete--other-marking 255 255 255
marking--discrete--stop-line 255 255 255
marking--discrete--symbol--bicycle 250 170 16
marking--discrete--symbol--other 250 170 15
marking--discrete--text 250 170 15
marking-only--continuous--dashed 255 255 255
marking-only--discrete--crosswalk-zebra 255 255 255
marking-only--discrete--other-marking 255 255 255
marking-only--discrete--text 255 255 255
nature--mountain 64 170 64
nature--sand 230 160 50
nature--sky 70 130 180
nature--snow 190 255 255
nature--terrain 152 251 152
nature--vegetation 107 142 35
nature--water 0 170 30
object--banner 255 255 128
object--bench 250 0 30
object--bike-rack 100 140 180
object--catch-basin 220 128 128
object--cctv-camera 222 40 40
object--fire-hydrant 100 170 30
object--junction-box 40 40 40
object--mailbox 33 33 33
object--manhole 100 128 160
object--parking-meter 20 20 255
object--phone-booth 142 0 0
object--pothole 70 100 150
object--sign--advertisement 250 171 30
object--sign--ambiguous 250 172 30
object--sign--back 250 173 30
object--sign--information 250 174 30
object--sign--other 250 175 30
object--sign--store 250 176 30
object--street-light 210 170 100
object--support--pole 153 153 153
object--support--pole-group 153 153 153
object--support--traffic-sign-frame 128 128 128
object--support--utility-pole 0 0 80
object--traffic-cone 210 60 60
object--traffic-light--cyclists 250 170 30
object--traffic-light--general-horizontal 250 170 30
object--traffic-light--general-single 250 170 30
object--traffic-light--general-upright 250 170 30
object--traffic-light--other 250 170 30
object--traffic-light--pedestrians 250 170 30
object--traffic-sign--ambiguous 192 192 192
object--traffic-sign--back 192 192 192
object--traffic-sign--direction-back 192 192 192
object--traffic-sign--direction-front 220 220 0
object--traffic-sign--front 220 220 0
object--traffic-sign--information-parking 0 0 196
object--traffic-sign--temporary-back 192 192 192
object--traffic-sign--temporary-front 220 220 0
object--trash-can 140 140 20
object--vehicle--bicycle 119 11 32
object--vehicle--boat 150 0 255
object--vehicle--bus 0 60 100
object--vehicle--car 0 0 142
object--vehicle--caravan 0 0 90
object--vehicle--motorcycle 0 0 230
object--vehicle--on-rails 0 80 100
object--vehicle--other-vehicle 128 64 64
object--vehicle--trailer 0 0 110
object--vehicle--truck 0 0 70
object--vehicle--vehicle-group 0 0 142
object--vehicle--wheeled-slow 0 0 192
object--water-valve 170 170 170
void--car-mount 32 32 32
void--dynamic 111 74 0
void--ego-vehicle 120 10 10
void--ground 81 0 81
void--static 111 111 0
void--unlabeled 0 0 0
"""
# ADE20K SceneParsing's 150 classes (objectInfo150, short names) in the colours its benchmarks draw them in;
# file value v = class v - 1.
ADE20K_150 = """
wall 120 120 120
building 180 120 120
sky 6 230 230
floor 80 50 50
tree 4 200 3
ceiling 120 120 80
road 140 140 140
bed 204 5 255
windowpane 230 230 230
grass 4 250 7
cabinet 224 5 255
sidewalk 235 255 7
person 150 5 61
earth 120 120 70
door 8 255 51
table 255 6 82
mountain 143 255 140
plant 204 255 4
curtain 255 51 7
chair 204 70 3
car 0 102 200
water 61 230 250
painting 255 6 51
sofa 11 102 255
shelf 255 7 71
house 255 9 224
sea 9 7 230
mirror 220 220 220
rug 255 9 92
field 112 9 255
armchair 8 255 214
seat 7 255 224
fence 255 184 6
desk 10 255 71
rock 255 41 10
wardrobe 7 255 255
lamp 224 255 8
bathtub 102 8 255
railing 255 61 6
cushion 255 194 7
base 255 122 8
box 0 255 20
column 255 8 41
signboard 255 5 153
chest of drawers 6 51 255
counter 235 12 255
sand 160 150 20
sink 0 163 255
skyscraper 140 140 140
fireplace 250 10 15
refrigerator 20 255 0
grandstand 31 255 0
path 255 31 0
stairs 255 224 0
runway 153 255 0
case 0 0 255
pool table 255 71 0
pillow 0 235 255
screen door 0 173 255
stairway 31 0 255
river 11 200 200
bridge 255 82 0
bookcase 0 255 245
blind 0 61 255
coffee table 0 255 112
toilet 0 255 133
flower 255 0 0
book 255 163 0
hill 255 102 0
bench 194 255 0
countertop 0 143 255
stove 51 255 0
palm 0 82 255
kitchen island 0 255 41
computer 0 255 173
swivel chair 10 0 255
boat 173 255 0
bar 0 255 153
arcade machine 255 92 0
hovel 255 0 255
bus 255 0 245
towel 255 0 102
light 255 173 0
truck 255 0 20
tower 255 184 184
chandelier 0 31 255
awning 0 255 61
streetlight 0 71 255
booth 255 0 204
television receiver 0 255 194
airplane 0 255 82
dirt track 0 10 255
apparel 0 112 255
pole 51 0 255
land 0 194 255
bannister 0 122 255
escalator 0 255 163
ottoman 255 153 0
bottle 0 255 10
buffet 255 112 0
poster 143 255 0
stage 82 0 255
van 163 255 0
ship 255 235 0
fountain 8 184 170
conveyer belt 133 0 255
canopy 0 255 92
washer 184 0 255
plaything 255 0 31
swimming pool 0 184 255
stool 0 214 255
barrel 255 0 112
basket 92 255 0
waterfall 0 224 255
tent 112 224 255
bag 70 184 160
minibike 163 0 255
cradle 153 0 255
oven 71 255 0
ball 255 0 163
food 255 204 0
step 255 0 143
tank 0 255 235
trade name 133 255 0
microwave 255 0 235
pot 245 0 255
animal 255 0 122
bicycle 255 245 0
lake 10 190 212
dishwasher 214 255 0
screen 0 204 255
blanket 20 0 255
sculpture 255 255 0
hood 0 153 255
sconce 0 41 255
vase 0 255 204
traffic light 41 0 255
tray 41 255 0
ashcan 173 0 255
fan 0 245 255
pier 71 0 255
crt screen 122 0 255
plate 0 255 184
monitor 0 92 255
bulletin board 184 255 0
shower 0 133 255
radiator 255 214 0
glass 25 194 194
clock 102 255 0
flag 92 0 255
"""
