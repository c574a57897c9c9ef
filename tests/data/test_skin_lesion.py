from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from monai_srb.data import (
    DEFAULT_MASK_PATTERN,
    dataset_image_channels,
    folder_image_channels,
    image_channels,
    kfold_split,
    load_head_circumferences,
    load_skin_lesion_data,
    load_skin_lesion_images,
    split_datalist,
)


def _rgb(path: Path, size: tuple[int, int] = (40, 30), fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size[1], size[0], 3), 128, np.uint8), "RGB").save(path, format=fmt)
    return path


def _mask(path: Path, size: tuple[int, int] = (40, 30), fmt: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    mask = np.zeros((size[1], size[0]), np.uint8)
    mask[5:15, 10:20] = 255
    Image.fromarray(mask, "L").save(path, format=fmt)
    return path


def _isic(root: Path, ids: tuple[str, ...] = ("ISIC_0000001", "ISIC_0000000")) -> Path:
    for i in ids:
        _rgb(root / "images" / f"{i}.jpg")
        _mask(root / "masks" / f"{i}_segmentation.png")
    return root


def _ph2(root: Path, cases: tuple[str, ...] = ("IMD003", "IMD002")) -> Path:
    for c in cases:
        _rgb(root / c / f"{c}_Dermoscopic_Image" / f"{c}.bmp")
        _mask(root / c / f"{c}_lesion" / f"{c}_lesion.bmp")
    return root


def test_isic_layout(tmp_path):
    root = _isic(tmp_path)
    (root / "images" / "notes.txt").write_text("not an image")
    datalist = load_skin_lesion_data(root)
    assert [Path(d["image"]).name for d in datalist] == ["ISIC_0000000.jpg", "ISIC_0000001.jpg"]
    masks = [Path(d["label"]).name for d in datalist]
    assert masks == ["ISIC_0000000_segmentation.png", "ISIC_0000001_segmentation.png"]
    assert all(Path(d["image"]).is_absolute() for d in datalist)
    assert load_skin_lesion_data(root, layout="isic") == datalist


def test_ph2_layout(tmp_path):
    root = _ph2(tmp_path)
    datalist = load_skin_lesion_data(root)
    assert datalist == [
        {
            "image": str(root / c / f"{c}_Dermoscopic_Image" / f"{c}.bmp"),
            "label": str(root / c / f"{c}_lesion" / f"{c}_lesion.bmp"),
        }
        for c in ("IMD002", "IMD003")
    ]
    assert load_skin_lesion_data(root, layout="ph2") == datalist


def _unreadable(root: Path) -> None:
    (root / "images" / "ISIC_0000001.jpg").write_bytes(b"this is not a jpeg")


def _truncated(root: Path) -> None:
    path = root / "images" / "ISIC_0000001.jpg"
    _rgb(path, (200, 150))
    path.write_bytes(path.read_bytes()[:400])


def _missing_mask(root: Path) -> None:
    (root / "masks" / "ISIC_0000001_segmentation.png").unlink()


def _other_size(root: Path) -> None:
    _mask(root / "masks" / "ISIC_0000001_segmentation.png", (30, 40))


def _empty_images(root: Path) -> None:
    for p in (root / "images").iterdir():
        p.unlink()


def _no_masks_folder(root: Path) -> None:
    for p in (root / "masks").iterdir():
        p.unlink()
    (root / "masks").rmdir()


def _ph2_missing_lesion(root: Path) -> None:
    for p in (root / "images").iterdir():
        p.unlink()
    (root / "images").rmdir()
    _ph2(root)
    (root / "IMD003" / "IMD003_lesion" / "IMD003_lesion.bmp").unlink()


def _ph2_other_size(root: Path) -> None:
    _ph2_missing_lesion(root)
    _mask(root / "IMD003" / "IMD003_lesion" / "IMD003_lesion.bmp", (41, 30), fmt="BMP")


BAD_DATA = [
    ("unreadable image", _unreadable, r"ISIC_0000001\.jpg cannot be read as an image"),
    ("truncated image", _truncated, r"ISIC_0000001\.jpg cannot be read as an image"),
    ("missing mask", _missing_mask, r"ISIC_0000001_segmentation\.png does not exist"),
    (
        "mask of another size",
        _other_size,
        r"ISIC_0000001_segmentation\.png is 30x40 .* 40x30 of its image .*ISIC_0000001\.jpg",
    ),
    ("empty image folder", _empty_images, r"image folder .*images holds no"),
    ("no mask folder", _no_masks_folder, r"mask folder .*masks does not exist"),
    ("PH2 missing lesion mask", _ph2_missing_lesion, r"IMD003_lesion\.bmp does not exist"),
    ("PH2 mask of another size", _ph2_other_size, r"IMD003_lesion\.bmp is 41x30"),
]


@pytest.mark.parametrize("name,corrupt,message", BAD_DATA, ids=[b[0] for b in BAD_DATA])
def test_bad_data_names_the_file(tmp_path, name, corrupt, message):
    root = _isic(tmp_path / "data")
    corrupt(root)
    with pytest.raises(ValueError, match=message):
        load_skin_lesion_data(root)


@pytest.mark.parametrize(
    "make,layout,message",
    [
        (lambda p: p / "missing", "auto", r"missing is not a folder"),
        (lambda p: p, "auto", r"holds neither an images/ \+ masks/ folder pair nor PH2 case folders"),
        (lambda p: p, "ph2", r"holds no <case>/<case>_Dermoscopic_Image folders"),
        (lambda p: _isic(p), "dicom", r"Unsupported option 'dicom', Available options are .*'ph2'"),
    ],
)
def test_bad_folder(tmp_path, make, layout, message):
    with pytest.raises(ValueError, match=message):
        load_skin_lesion_data(make(tmp_path), layout=layout)


def test_image_folder_for_inference(tmp_path):
    root = _isic(tmp_path)
    images = load_skin_lesion_images(root / "images")
    assert [Path(d["image"]).name for d in images] == ["ISIC_0000000.jpg", "ISIC_0000001.jpg"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no"):
        load_skin_lesion_images(tmp_path / "empty")
    with pytest.raises(ValueError, match="is not a folder"):
        load_skin_lesion_images(tmp_path / "missing")
    _unreadable(root)
    with pytest.raises(ValueError, match=r"ISIC_0000001\.jpg cannot be read"):
        load_skin_lesion_images(root / "images")


@pytest.mark.parametrize("n,num_folds", [(10, 5), (11, 5), (5, 5), (7, 2)])
def test_kfold_split_partitions_the_data(n, num_folds):
    data = [{"image": str(i)} for i in range(n)]
    seen: list[str] = []
    for fold in range(num_folds):
        train, val = kfold_split(data, fold, num_folds, seed=3)
        assert sorted(d["image"] for d in train + val) == sorted(d["image"] for d in data)
        assert n // num_folds <= len(val) <= -(-n // num_folds)
        assert train == [d for d in data if d not in val]  # order of the data list kept
        assert (train, val) == kfold_split(data, fold, num_folds, seed=3)
        seen += [d["image"] for d in val]
    assert sorted(seen) == sorted(d["image"] for d in data)
    assert kfold_split(data, 0, num_folds, seed=3) != kfold_split(data, 0, num_folds, seed=4)


@pytest.mark.parametrize(
    "n,fold,num_folds,message",
    [(10, 0, 1, "num_folds"), (10, 5, 5, "fold must be"), (10, -1, 5, "fold must be"), (3, 0, 5, "at least num_folds")],
)
def test_kfold_split_rejects_bad_arguments(n, fold, num_folds, message):
    with pytest.raises(ValueError, match=message):
        kfold_split([{"image": str(i)} for i in range(n)], fold, num_folds)


def _folder(root: Path, mode: str, ids: tuple[str, ...] = ("002_HC", "000_HC"), pattern: str = "{id}_mask.png") -> Path:
    # A generic images/ + masks/ folder (HC18's naming by default): non-square PNGs in the given PIL mode.
    for i in ids:
        (root / "images").mkdir(parents=True, exist_ok=True)
        shape = (30, 40) if mode == "L" else (30, 40, len(mode))
        pixels = np.full(shape, 90, np.uint8)
        if mode.endswith("A"):
            pixels[..., -1] = 255  # opaque: a transparent pixel is refused
        Image.fromarray(pixels, mode).save(root / "images" / f"{i}.png")
        _mask(root / "masks" / pattern.format(id=i))
    return root


@pytest.mark.parametrize("mode,channels", [("L", 1), ("RGB", 3), ("RGBA", 3)])
def test_generic_folder_with_a_mask_pattern(tmp_path, mode, channels):
    root = _folder(tmp_path, mode)
    datalist = load_skin_lesion_data(root, mask_pattern="{id}_mask.png")
    assert datalist == [
        {"image": str(root / "images" / f"{i}.png"), "label": str(root / "masks" / f"{i}_mask.png")}
        for i in ("000_HC", "002_HC")
    ]
    assert load_skin_lesion_data(root, layout="folder", mask_pattern="{id}_mask.png") == datalist
    assert image_channels(datalist) == channels == image_channels(datalist, channels)
    other = 4 - channels  # 1 <-> 3
    refusal = rf"image .*000_HC\.png has {channels} channel\(s\).*expected {other} as in_channels"
    with pytest.raises(ValueError, match=refusal):
        image_channels(datalist, other)


def test_mixed_channels_name_the_odd_image(tmp_path):
    root = _folder(tmp_path, "L")
    Image.new("RGB", (40, 30)).save(root / "images" / "002_HC.png")
    refusal = r"002_HC\.png has 3 channel\(s\).*expected 1 as the first image .*000_HC\.png"
    with pytest.raises(ValueError, match=refusal):
        image_channels(load_skin_lesion_data(root, mask_pattern="{id}_mask.png"))
    with pytest.raises(ValueError, match="in_channels must be null"):
        image_channels([{"image": str(root / "images" / "000_HC.png")}], 2)


# (folder mode or None for the synthetic set, in_channels, expected): one image read at most, never the data list
DATASET_CHANNELS = [(None, None, 3), (None, 1, 1), ("L", None, 1), ("RGB", None, 3), ("L", 3, 3)]


@pytest.mark.parametrize("mode,in_channels,expected", DATASET_CHANNELS)
def test_dataset_image_channels_reads_the_first_image_only(tmp_path, mode, in_channels, expected):
    root = None if mode is None else _folder(tmp_path, mode)
    if root is not None:
        (root / "images" / "002_HC.png").write_bytes(b"not an image")  # the second image: never opened
    assert dataset_image_channels(root, in_channels, mask_pattern="{id}_mask.png") == expected


@pytest.mark.parametrize("mode,in_channels,expected", DATASET_CHANNELS)
def test_folder_image_channels_reads_the_first_image_only(tmp_path, mode, in_channels, expected):
    root = None if mode is None else _folder(tmp_path, mode)
    if root is not None:
        (root / "images" / "002_HC.png").write_bytes(b"not an image")
    assert folder_image_channels(None if root is None else root / "images", in_channels) == expected


def test_inference_images_must_agree_on_their_channels(tmp_path):
    root = _folder(tmp_path, "L")
    Image.new("RGB", (40, 30)).save(root / "images" / "002_HC.png")
    with pytest.raises(ValueError, match=r"002_HC\.png has 3 channel\(s\).*expected 1 as the first image"):
        load_skin_lesion_images(root / "images")
    with pytest.raises(ValueError, match=r"002_HC\.png has 3 channel\(s\).*expected 1 as in_channels"):
        load_skin_lesion_images(root / "images", in_channels=1)


def test_dataset_image_channels_rejects_a_bad_in_channels(tmp_path):
    with pytest.raises(ValueError, match="in_channels must be null .*, got 2"):
        dataset_image_channels(None, 2)


def test_data_list_checks_every_images_channels(tmp_path):
    root = _folder(tmp_path, "L")
    with pytest.raises(ValueError, match=r"000_HC\.png has 1 channel\(s\).*expected 3 as in_channels"):
        load_skin_lesion_data(root, mask_pattern="{id}_mask.png", in_channels=3)
    Image.new("RGB", (40, 30)).save(root / "images" / "002_HC.png")
    with pytest.raises(ValueError, match=r"002_HC\.png has 3 channel\(s\).*expected 1 as the first image"):
        load_skin_lesion_data(root, mask_pattern="{id}_mask.png")


GENERIC_BAD_DATA = [
    ("missing mask", lambda r: (r / "masks" / "002_HC_mask.png").unlink(), r"002_HC_mask\.png does not exist"),
    (
        "mask of another size",
        lambda r: _mask(r / "masks" / "000_HC_mask.png", (40, 40)),
        r"000_HC_mask\.png is 40x40 .* 40x30 of its image .*000_HC\.png",
    ),
    (
        "wrong pattern",
        lambda r: None,
        r"no mask in .*masks matches mask_pattern '\{id\}_segmentation\.png' \(image 000_HC\.png needs "
        r"000_HC_segmentation\.png\); the folder holds \['000_HC_mask\.png', '002_HC_mask\.png'\]",
    ),
]


@pytest.mark.parametrize("name,corrupt,message", GENERIC_BAD_DATA, ids=[b[0] for b in GENERIC_BAD_DATA])
def test_generic_folder_bad_data_names_the_file_or_pattern(tmp_path, name, corrupt, message):
    root = _folder(tmp_path, "L")
    corrupt(root)
    pattern = DEFAULT_MASK_PATTERN if name == "wrong pattern" else "{id}_mask.png"
    with pytest.raises(ValueError, match=message):
        load_skin_lesion_data(root, mask_pattern=pattern)


@pytest.mark.parametrize("pattern", ["mask.png", "{name}_mask.png", "{id}_{x}.png", "{id_mask.png"])
def test_mask_pattern_needs_the_id_field(tmp_path, pattern):
    with pytest.raises(ValueError, match=r"mask_pattern must hold the field \{id\}"):
        load_skin_lesion_data(_folder(tmp_path, "L"), mask_pattern=pattern)


def test_head_circumferences_from_labels_csv(tmp_path):
    root = _folder(tmp_path, "L")
    datalist = load_skin_lesion_data(root, mask_pattern="{id}_mask.png")
    assert load_head_circumferences(root, datalist) == {}  # no labels.csv: no HC18 score
    csv_file = root / "labels.csv"
    csv_file.write_text("image_id,melanoma\n000_HC,1\n")
    assert load_head_circumferences(root, datalist) == {}  # another data set's labels (ISIC's diagnoses)
    csv_file.write_text("image_id,pixel_size_mm,head_circumference_mm\n000_HC,0.1,44.3\n002_HC,0.2,56.8\n009_HC,1,1\n")
    expected = {datalist[0]["label"]: (0.1, 44.3), datalist[1]["label"]: (0.2, 56.8)}
    assert load_head_circumferences(root, datalist) == expected
    csv_file.write_bytes(b"\xef\xbb\xbf" + csv_file.read_bytes())  # saved by Excel: a UTF-8 BOM before image_id
    assert load_head_circumferences(root, datalist) == expected
    for text, message in [
        ("image_id,pixel_size_mm\n000_HC,0.1\n", r"lacks the column\(s\) \['head_circumference_mm'\]"),
        ("image_id,pixel_size_mm,head_circumference_mm\n000_HC,0.1,44.3\n", r"no row for image .*002_HC\.png"),
        ("image_id,pixel_size_mm,head_circumference_mm\n000_HC,x,44.3\n", r"row of '000_HC' holds a value that is not"),
        ("image_id,pixel_size_mm,head_circumference_mm\n000_HC,0,44.3\n", r"row of '000_HC' needs positive sizes"),
    ]:
        csv_file.write_text(text)
        with pytest.raises(ValueError, match=message):
            load_head_circumferences(root, datalist)


def _png(path: Path, pixels: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, mode).save(path)


def _values_mask(*values: int, dtype: type = np.uint8) -> np.ndarray:
    """A 30 x 40 mask holding each of ``values`` in a band of its own."""
    mask = np.zeros((30, 40), dtype)
    for k, v in enumerate(values):
        mask[5 * k : 5 * k + 5] = v
    return mask


def _rgba(alpha: int) -> np.ndarray:
    pixels = np.random.default_rng(0).integers(0, 256, (30, 40, 4), dtype=np.uint8)
    pixels[..., 3] = 255
    pixels[:5, :5, 3] = alpha
    return pixels


IMAGE_1 = "image {root}/images/001.png"
MASK_1 = "mask {root}/masks/001_segmentation.png of image {root}/images/001.png holds the values "
BINARY = ", expected a binary mask of 0 and 255, or of 0 and 1."
# (case, how to change a folder of three RGB PNGs 000..002 with 0/255 masks, None when it loads, else the message)
HOSTILE_2D = [
    ("RGBA, opaque", lambda r: _png(r / "images" / "001.png", _rgba(255)), None),
    ("RGBA, transparent pixels", lambda r: _png(r / "images" / "001.png", _rgba(0)),
     IMAGE_1 + " has transparent pixels (alpha down to 0), and the alpha channel is dropped when it is read: "
     "flatten it onto a background (or make it opaque) first."),
    ("16-bit image", lambda r: _png(r / "images" / "001.png", np.full((30, 40), 4000, np.uint16)),
     IMAGE_1 + " has more than 8 bits per pixel (PIL mode 'I;16'); it is read as 8-bit, which clips every value "
     "above 255 to 255: save it with 8 bits per channel (scaled to 0..255)."),
    ("16-bit mask of 0 and 65535", lambda r: _png(r / "masks" / "001_segmentation.png",
                                                  _values_mask(0, 65535, dtype=np.uint16)), None),
    ("masks of 0 and 1",
     lambda r: [_png(r / "masks" / f"00{i}_segmentation.png", _values_mask(0, 1)) for i in range(3)], None),
    ("an empty mask", lambda r: _png(r / "masks" / "001_segmentation.png", _values_mask(0)), None),
    ("mask of 0, 128 and 255", lambda r: _png(r / "masks" / "001_segmentation.png", _values_mask(0, 128, 255)),
     MASK_1 + "[0, 128, 255] (PIL mode 'L', read as 8-bit grayscale)" + BINARY),
    ("mask of 0, 1 and 255", lambda r: _png(r / "masks" / "001_segmentation.png", _values_mask(0, 1, 255)),
     MASK_1 + "[0, 1, 255] (PIL mode 'L', read as 8-bit grayscale)" + BINARY),
    ("mask of every grey level (as a JPEG's)",
     lambda r: _png(r / "masks" / "001_segmentation.png", np.arange(1200, dtype=np.uint8).reshape(30, 40)),
     MASK_1 + "[0, 1, 2, 3, 4, 5, 6, 7] ... (256 values)"),
    ("red mask", lambda r: _png(r / "masks" / "001_segmentation.png", np.stack(
        [_values_mask(0, 255), _values_mask(0), _values_mask(0)], -1)), MASK_1 + "[0, 76] (PIL mode 'RGB', read as"),
    ("grayscale and RGB images", lambda r: _png(r / "images" / "001.png", np.full((30, 40), 90, np.uint8)),
     IMAGE_1 + " has 1 channel(s) (grayscale), expected 3 as the first image {root}/images/000.png has."),
    ("an image without its mask", lambda r: (r / "masks" / "001_segmentation.png").unlink(),
     "mask of image 001.png: {root}/masks/001_segmentation.png does not exist."),
    ("a mask without its image", lambda r: (r / "images" / "001.png").unlink(),
     "1 mask(s) in {root}/masks have no image in {root}/images (first: ['001_segmentation.png']); each mask "
     "'{{id}}_segmentation.png' needs its image <id>.jpg/.jpeg/.png/.bmp: restore the image or remove the mask."),
    ("an image of another suffix", lambda r: (r / "images" / "001.png").rename(r / "images" / "001.tif"),
     "1 mask(s) in {root}/masks have no image in {root}/images (first: ['001_segmentation.png'])"),
    ("a file the mask pattern skips", lambda r: (r / "masks" / "README.txt").write_text("masks by hand"), None),
    ("empty images/ and masks/", lambda r: [p.unlink() for p in sorted(r.rglob("*.png"))],
     "images/ + masks/ layout: image folder {root}/images holds no .jpg/.jpeg/.png/.bmp images."),
    ("an empty dataset folder", lambda r: [[p.unlink() for p in sorted(r.rglob("*.png"))], (r / "images").rmdir(),
                                           (r / "masks").rmdir()],
     "dataset_dir {root} holds neither an images/ + masks/ folder pair nor PH2 case folders "
     "(<case>/<case>_Dermoscopic_Image); it holds nothing."),
]


@pytest.mark.parametrize("case,change,message", HOSTILE_2D, ids=[c[0] for c in HOSTILE_2D])
def test_hostile_2d_data_is_refused_naming_the_file_and_values(tmp_path, case, change, message):
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    for i in range(3):
        _png(root / "images" / f"00{i}.png", rng.integers(0, 256, (30, 40, 3), dtype=np.uint8))
        _png(root / "masks" / f"00{i}_segmentation.png", _values_mask(0, 255))
    change(root)
    if message is None:
        assert len(load_skin_lesion_data(root)) == 3
        return
    with pytest.raises(ValueError) as info:
        load_skin_lesion_data(root)
    assert message.format(root=root.resolve()) in str(info.value), str(info.value)


@pytest.mark.parametrize(
    "fold, message",
    [(None, "need at least 2 items (images or volumes) to split into training and validation, got 1."),
     (0, "need at least num_folds=5 items for a 5-fold split, got 1.")],
)
def test_a_one_image_folder_loads_but_cannot_be_split(tmp_path, fold, message):
    datalist = load_skin_lesion_data(_isic(tmp_path, ids=("ISIC_0000000",)))
    assert len(datalist) == 1  # enough to evaluate or predict
    with pytest.raises(ValueError) as info:
        split_datalist(datalist, 0.2) if fold is None else kfold_split(datalist, fold, 5)
    assert str(info.value) == message


def test_images_for_inference_are_checked_as_training_images(tmp_path):
    _png(tmp_path / "a.png", np.full((30, 40), 4000, np.uint16))
    with pytest.raises(ValueError) as info:
        load_skin_lesion_images(tmp_path)
    assert f"image {tmp_path.resolve() / 'a.png'} has more than 8 bits per pixel (PIL mode 'I;16')" in str(info.value)
