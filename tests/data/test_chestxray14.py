from __future__ import annotations

import csv
import gzip
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from monai_srb.data.chestxray14 import (
    CHESTXRAY14_CLASSES,
    chestxray14_datalists,
    find_chestxray14_csv,
    read_chestxray14_csv,
)
from monai_srb.data.split import patient_split, random_split

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
REAL_CSV = SHARED / "chestxray14" / "Data_Entry_2017_v2020.csv.gz"

HEADER = ["Image Index", "Finding Labels", "Follow-up #", "Patient ID"]


def _chestxray_folder(
    root: Path, rows: list[tuple[str, str, str]], header: list[str] = HEADER, gz: bool = False
) -> Path:
    """A ChestX-ray14 folder with ``rows`` (image, findings, patient) and a 16x16 grey PNG per row."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    name = "Data_Entry_2017.csv.gz" if gz else "Data_Entry_2017.csv"
    with (gzip.open if gz else open)(root / name, "wt", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        for image, findings, patient in rows:
            writer.writerow([image, findings, 0, patient][: len(header)])
            Image.fromarray(np.full((16, 16), 100, np.uint8)).save(root / "images" / image)
    return root


def _rows(n: int) -> list[tuple[str, str, str]]:
    findings = ["No Finding", "Cardiomegaly", "Effusion|Mass", "Hernia"]
    return [(f"{i:08d}_000.png", findings[i % 4], str(i // 2)) for i in range(n)]


@pytest.mark.parametrize("gz", [False, True])
def test_read_csv_labels_in_official_order(tmp_path, gz):
    root = _chestxray_folder(tmp_path, _rows(4), gz=gz)
    names, labels, patients = read_chestxray14_csv(find_chestxray14_csv(root))
    assert names == [r[0] for r in _rows(4)] and patients == ["0", "0", "1", "1"]
    assert labels.shape == (4, 14) and labels.dtype == np.float32
    assert labels[0].sum() == 0  # No Finding
    assert labels[1].nonzero()[0].tolist() == [1]  # Cardiomegaly
    assert labels[2].nonzero()[0].tolist() == [2, 4]  # Effusion|Mass
    assert labels[3].nonzero()[0].tolist() == [13]  # Hernia


@pytest.mark.skipif(not REAL_CSV.exists(), reason="shared ChestX-ray14 label table not available")
def test_real_chestxray14_split_counts():
    names, labels, patients = read_chestxray14_csv(REAL_CSV)
    assert len(names) == 112_120 and len(set(patients)) == 30_805
    train, val = random_split(len(names), 0.2, seed=0)
    assert (len(train), len(val)) == (89_696, 22_424)
    p_train, p_val = patient_split(patients, 0.2, seed=0)
    assert len(p_train) + len(p_val) == 112_120 and len(p_val) >= 22_424
    assert not {patients[i] for i in p_train} & {patients[i] for i in p_val}
    row = {n: labels[i] for i, n in enumerate(names) if n in ("00000001_000.png", "00027426_000.png")}
    assert row["00000001_000.png"].nonzero()[0].tolist() == [CHESTXRAY14_CLASSES.index("Cardiomegaly")]
    assert row["00027426_000.png"].sum() == 0  # No Finding


@pytest.mark.skipif(not REAL_CSV.exists(), reason="shared ChestX-ray14 data not available")
def test_real_chestxray14_uses_only_present_images():
    root = REAL_CSV.parent
    with pytest.raises(ValueError, match="112118 of the 112120 images"):
        chestxray14_datalists(root)
    # The split is made on the full table, so which part each of the two images on disk lands in is fixed by the
    # seed: with seed 0 both are training images (table rows 0 and 102888), and the empty validation part is refused.
    with pytest.warns(UserWarning, match="dropping 112118"), pytest.raises(ValueError, match=r"no val image .*seed=0"):
        chestxray14_datalists(root, require_images=False, seed=0)
    for seed, train, val in ((1, "00000001_000.png", "00027426_000.png"), (2, "00027426_000.png", "00000001_000.png")):
        with pytest.warns(UserWarning, match="dropping 112118"):
            lists = chestxray14_datalists(root, require_images=False, seed=seed)
        assert {part: [d["name"] for d in items] for part, items in lists.items()} == {"train": [train], "val": [val]}


def test_datalists_split_and_items(tmp_path):
    root = _chestxray_folder(tmp_path, _rows(20))
    lists = chestxray14_datalists(root, val_fraction=0.25, seed=0)
    assert (len(lists["train"]), len(lists["val"])) == (15, 5)
    item = lists["train"][0]
    assert Path(item["image"]).is_file() and item["label"].shape == (14,) and item["name"].endswith(".png")
    by_patient = chestxray14_datalists(root, val_fraction=0.25, patient_wise=True)
    assert not {d["patient"] for d in by_patient["train"]} & {d["patient"] for d in by_patient["val"]}
    assert [len(v) for v in chestxray14_datalists(root, max_samples=3).values()] == [3, 3]


def test_missing_images_dropped_only_when_allowed(tmp_path):
    root = _chestxray_folder(tmp_path, _rows(20))
    (root / "images" / "00000003_000.png").unlink()
    with pytest.raises(ValueError, match="00000003_000.png"):
        chestxray14_datalists(root)
    with pytest.warns(UserWarning, match="dropping 1 of the 20"):
        lists = chestxray14_datalists(root, require_images=False)
    assert sum(len(v) for v in lists.values()) == 19


def _bad_chestxray(kind: str, root: Path) -> Path:
    if kind == "no_csv":
        (root / "images").mkdir(parents=True)
        return root
    if kind == "missing_columns":
        return _chestxray_folder(root, _rows(4), header=["Image Index", "Follow-up #"])
    folder = _chestxray_folder(root, _rows(8))
    if kind == "unknown_finding":
        with open(folder / "Data_Entry_2017.csv", "a") as f:
            f.write("x.png,Fracture,0,9\n")
    elif kind == "empty_images":
        for p in (folder / "images").iterdir():
            p.unlink()
    elif kind == "no_images_folder":
        for p in (folder / "images").iterdir():
            p.unlink()
        (folder / "images").rmdir()
    elif kind == "unreadable_image":
        (folder / "images" / "00000002_000.png").write_bytes(b"not an image")
    elif kind == "empty_csv":
        (folder / "Data_Entry_2017.csv").write_text(",".join(HEADER) + "\n")
    return folder


@pytest.mark.parametrize(
    "kind, match",
    [
        ("no_csv", r"no Data_Entry_2017\*\.csv"),
        ("missing_columns", r"lacks the columns \['Finding Labels', 'Patient ID'\]"),
        ("unknown_finding", r"line 10: finding 'Fracture'"),
        ("empty_images", r"images is empty"),
        ("no_images_folder", r"has no images/ folder"),
        ("unreadable_image", r"00000002_000.png cannot be read"),
        ("empty_csv", r"Data_Entry_2017.csv has no rows"),
    ],
)
def test_bad_chestxray14_raises_naming_the_file(tmp_path, kind, match):
    root = _bad_chestxray(kind, tmp_path / kind)
    with pytest.raises(ValueError, match=match):
        chestxray14_datalists(root)


def test_truncated_image_caught_by_decode_check(tmp_path):
    root = _chestxray_folder(tmp_path, _rows(8))
    path = root / "images" / "00000001_000.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:2000])
    chestxray14_datalists(root)  # the header is intact
    with pytest.raises(ValueError, match="00000001_000.png cannot be read"):
        chestxray14_datalists(root, check_images="decode")


@pytest.mark.parametrize("gz", [False, True])
def test_csv_with_utf8_bom_is_read(tmp_path, gz):
    # Spreadsheet programs save "CSV UTF-8" with a byte order mark before the first column's name.
    root = _chestxray_folder(tmp_path, _rows(4), gz=gz)
    csv_path = find_chestxray14_csv(root)
    opener = gzip.open if gz else open
    with opener(csv_path, "rb") as f:
        text = f.read()
    with opener(csv_path, "wb") as f:
        f.write(b"\xef\xbb\xbf" + text)
    names, labels, patients = read_chestxray14_csv(csv_path)
    assert names == [r[0] for r in _rows(4)] and patients == ["0", "0", "1", "1"]
    assert labels[2].nonzero()[0].tolist() == [2, 4]


@pytest.mark.parametrize(
    "duplicated, match",
    [
        ([3], r"1 image\(s\) on more than one row \('00000003_000.png' on lines \[5, 10\]\)"),
        ([0, 3, 3], r"2 image\(s\).*'00000000_000.png' on lines \[2, 10\]; '00000003_000.png' on lines \[5, 11, 12\]"),
    ],
)
def test_duplicate_csv_rows_are_refused_naming_image_and_lines(tmp_path, duplicated, match):
    # Without the check, a repeated row can put one image in both training and validation.
    rows = _rows(8)
    root = _chestxray_folder(tmp_path, rows + [(rows[i][0], "Hernia", rows[i][2]) for i in duplicated])
    with pytest.raises(ValueError, match=match):
        read_chestxray14_csv(root / "Data_Entry_2017.csv")
    for patient_wise in (False, True):
        with pytest.raises(ValueError, match="keep one row per image"):
            chestxray14_datalists(root, val_fraction=0.5, patient_wise=patient_wise)


def _raw_folder(root: Path, text: str) -> Path:
    """A ChestX-ray14 folder whose table is ``text`` as it is, and an image for every row that names one."""
    (root / "images").mkdir(parents=True)
    (root / "Data_Entry_2017.csv").write_text(text)
    for line in text.splitlines()[1:]:
        name = line.split(",")[0]
        if name.endswith(".png") and "/" not in name:
            Image.fromarray(np.full((16, 16), 100, np.uint8)).save(root / "images" / name)
    return root


GOOD = ["00000000_000.png,No Finding,0,0", "00000001_000.png,Mass,0,0", "00000002_000.png,Effusion|Mass,0,1"]
TABLE = "{root}/Data_Entry_2017.csv"
# (case, the table's rows after the header, chestxray14_datalists kwargs, the message; {root}: the folder)
HOSTILE_TABLES = [
    ("a finding not among the 14", ["00000009_000.png,Fracture,0,9"], {},
     TABLE + ", line 5: finding 'Fracture' is none of ['Atelectasis', "),
    ("a finding in lower case", ["00000009_000.png,mass,0,9"], {},
     TABLE + ", line 5: finding 'mass' is none of ['Atelectasis', 'Cardiomegaly', 'Effusion', 'Infiltration', 'Mass', "
     "'Nodule', 'Pneumonia', 'Pneumothorax', 'Consolidation', 'Edema', 'Emphysema', 'Fibrosis', 'Pleural_Thickening', "
     "'Hernia'] or 'No Finding' (did you mean 'Mass'?)."),
    ("a finding with a space", ["00000009_000.png,Pleural Thickening,0,9"], {},
     "or 'No Finding' (did you mean 'Pleural_Thickening'?)."),
    ("an empty Finding Labels cell", ["00000009_000.png,,0,9"], {},
     TABLE + ", line 5: the 'Finding Labels' cell is empty or missing, got the row {{'Image Index': "),
    ("a stray pipe", ["00000009_000.png,Mass|,0,9"], {},
     TABLE + ", line 5: 'Finding Labels' 'Mass|' holds an empty finding (a stray '|')."),
    ("No Finding with a finding", ["00000009_000.png,No Finding|Mass,0,9"], {},
     TABLE + ", line 5: 'Finding Labels' 'No Finding|Mass' holds 'No Finding' together with findings."),
    ("an empty Image Index cell", [",Mass,0,9"], {}, TABLE + ", line 5: the 'Image Index' cell is empty or missing"),
    ("an empty Patient ID cell", ["00000009_000.png,Mass,0,"], {},
     TABLE + ", line 5: the 'Patient ID' cell is empty or missing"),
    ("a cut row", ["00000009_000.png"], {},
     TABLE + ", line 5: the 'Finding Labels' cell is empty or missing, got the row "
     "{{'Image Index': '00000009_000.png', 'Finding Labels': None, "),
    ("a missing image", ["00000009_000.png,Mass,0,9", "00000010_000.png,Mass,0,9"], {"_unlink": "00000010_000.png"},
     "1 of the 5 images listed in " + TABLE + " are missing from {root}/images (first: ['00000010_000.png']); set "
     "require_images to false to train on the images present."),
    ("one row", [], {"_rows": GOOD[:1]}, TABLE + " has 1 row; a split into training and validation needs at least 2."),
    ("one patient", [], {"_rows": GOOD[:2], "patient_wise": True},
     TABLE + " has 1 patient; a split into training and validation by patient needs at least 2."),
    ("an empty validation part", [], {"_rows": GOOD[:2], "val_fraction": 0.2},
     "the split of the 2 rows of " + TABLE + " (val_fraction=0.2, seed=0, patient_wise=False) leaves the val part "
     "empty: a larger table or another val_fraction is needed."),
    ("max_samples 0", [], {"max_samples": 0}, "max_samples must be a positive integer or None (all), got 0."),
]


@pytest.mark.parametrize("case,rows,kwargs,message", HOSTILE_TABLES, ids=[c[0] for c in HOSTILE_TABLES])
def test_a_hostile_table_is_refused_naming_the_file_line_and_value(tmp_path, case, rows, kwargs, message):
    kwargs = dict(kwargs)
    rows = kwargs.pop("_rows", GOOD + rows)
    unlink = kwargs.pop("_unlink", None)
    root = _raw_folder(tmp_path / "cxr", "\n".join([",".join(HEADER), *rows]) + "\n")
    if unlink:
        (root / "images" / unlink).unlink()
    with pytest.raises(ValueError) as info:
        chestxray14_datalists(root, **kwargs)
    assert message.format(root=root.resolve()) in str(info.value), str(info.value)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "lacks the columns ['Image Index', 'Finding Labels', 'Patient ID'] (has no header row: the file is "
         "empty)."),
        (",".join(HEADER) + "\n", "Data_Entry_2017.csv has no rows."),
        ("Image Index,Labels\na.png,Mass\n", "lacks the columns ['Finding Labels', 'Patient ID'] (has ['Image Index', "
         "'Labels'])."),
        ("Image Index;Finding Labels;Patient ID\na.png;Mass;1\n", "lacks the columns ['Image Index', 'Finding Labels', "
         "'Patient ID'] (has ['Image Index;Finding Labels;Patient ID'])."),
    ],
    ids=["empty file", "header only", "missing columns", "semicolons"],
)
def test_an_empty_or_foreign_table_is_refused_naming_the_file(tmp_path, text, message):
    root = _raw_folder(tmp_path / "cxr", text)
    with pytest.raises(ValueError) as info:
        chestxray14_datalists(root)
    assert str(info.value).startswith(f"ChestX-ray14 table {root.resolve() / 'Data_Entry_2017.csv'} ")
    assert message in str(info.value), str(info.value)


def test_a_repeated_finding_and_extra_trailing_fields_are_read(tmp_path):
    # Tolerated, as they change no label: 'Mass|Mass' is Mass; cells beyond the header's (a trailing comma) are ignored.
    rows = [*GOOD, "00000009_000.png,Mass|Mass,0,9", "00000010_000.png,Hernia,0,9,,"]
    root = _raw_folder(tmp_path / "cxr", "\n".join([",".join(HEADER), *rows]) + "\n")
    names, labels, _ = read_chestxray14_csv(root / "Data_Entry_2017.csv")
    assert labels[names.index("00000009_000.png")].nonzero()[0].tolist() == [CHESTXRAY14_CLASSES.index("Mass")]
    assert labels[names.index("00000010_000.png")].nonzero()[0].tolist() == [CHESTXRAY14_CLASSES.index("Hernia")]


def _transparent_rgba() -> np.ndarray:
    pixels = np.full((16, 16, 4), 100, np.uint8)
    pixels[:4, :4, 3] = 0
    return pixels


@pytest.mark.parametrize(
    "pixels, check_images, message",
    [
        (np.full((16, 16), 4000, np.uint16), "header", "has more than 8 bits per pixel (PIL mode 'I;16'); it is read "
         "as 8-bit, which clips every value above 255 to 255"),
        (np.full((16, 16, 4), 255, np.uint8), "decode", None),  # opaque RGBA: its alpha channel is dropped
        (_transparent_rgba(), "header", None),  # the pixels are not read
        (_transparent_rgba(), "decode", "has transparent pixels (alpha down to 0), and the alpha channel is dropped"),
    ],
    ids=["16-bit", "opaque RGBA", "transparent RGBA, header only", "transparent RGBA, decoded"],
)
def test_images_are_checked_to_read_as_the_bundle_reads_them(tmp_path, pixels, check_images, message):
    root = _chestxray_folder(tmp_path, _rows(8))
    Image.fromarray(pixels).save(root / "images" / "00000002_000.png")
    if message is None:
        assert sum(map(len, chestxray14_datalists(root, check_images=check_images).values())) == 8
        return
    with pytest.raises(ValueError) as info:
        chestxray14_datalists(root, check_images=check_images)
    assert f"image {root.resolve() / 'images' / '00000002_000.png'} {message}" in str(info.value), str(info.value)
