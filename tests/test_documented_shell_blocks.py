"""
The docs test themselves (issue 23 §1): every fenced shell block of README.md, CONTRIBUTING.md and each bundle's
docs/README.md runs, on tiny settings, with ``bash -euo pipefail`` in a temporary folder laid out like the repository.

A block is named by its doc, the heading it sits under and its place among the shell blocks under that heading
(``README.md#bundles-2``), so an edit elsewhere renames nothing. Each block is in one of two tables:

- ``TINY``: how it runs here. ``subs`` are textual substitutions (the documented text, what runs instead), each of
  which must still match, so the table cannot drift from the docs; ``drop`` replaces a command that cannot run here
  by ``:`` with the reason (the block then runs partly); ``after`` continues in the folder another block left
  (its checkpoints and stores); ``prelude`` sets what a reader set in an earlier block (``B=...``); ``checks`` are
  shell lines run after the block (the files it must have written).
- ``SKIP``: the reason it cannot run here at all.

A block in neither table fails, naming it: a new documented command is never left untested silently. A fenced
block with no language is run as shell unless ``NOT_SHELL`` says what it is instead; a fence language that is
neither shell nor one of ``OTHER_LANGUAGES`` fails until it is decided.

Tiny settings: one epoch on a few 32 px synthetic images (3D: 32^3 volumes), and ``--tracking_uri null`` except
where the block reads the MLflow store, since a run's MLflow logging (store, model) costs more than the run (measured
on the 2-core machine: 7.7 s a tiny training without, 25.8 s with; tests/bundles/test_bundle_mlflow.py tests the
logging). ``../shared/data/*`` are tiny data sets written in each real set's layout, so the real-data commands run
as documented. Servers start in the background (``background``), are polled until they answer (``await_http``) and
are stopped by the process ids the block started.
"""

from __future__ import annotations

import csv
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "CONTRIBUTING.md", "bundles/*/docs/README.md")
SHELL_LANGUAGES = {"bash", "sh", "shell", "console"}
OTHER_LANGUAGES = {"python", "json", "yaml", "toml"}
BLOCK_TIMEOUT = 420  # seconds; the longest block (the chest bundle's commands: 9 runs, 2 DDP) took 160 on 2 busy cores
SKIN, CHEST, SEG3D = (f"bundles/srb_{b}" for b in ("skin_lesion_segmentation", "chest_xray_classification",
                                                     "3d_segmentation"))


@dataclass(frozen=True)
class Block:
    name: str
    lang: str
    text: str


@dataclass(frozen=True)
class Tiny:
    """How one documented block runs in the test (see the module docstring)."""

    subs: tuple[tuple[str, str], ...] = ()
    drop: tuple[tuple[str, str], ...] = ()
    after: str | None = None
    prelude: str = ""
    checks: str = ""


def _slug(heading: str) -> str:
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def documented_blocks() -> list[Block]:
    """Every fenced block of the docs that is shell or undecided (no language, or one the test does not know)."""
    blocks = []
    for pattern in DOCS:
        for doc in sorted(ROOT.glob(pattern)):
            rel = doc.relative_to(ROOT).as_posix()
            heading, count, fence, body, lang = "", {}, None, [], ""
            for line in doc.read_text().splitlines():
                if fence is None:
                    if m := re.match(r"#{1,6}\s+(.*)", line):
                        heading = _slug(m.group(1))
                    elif m := re.match(r"\s*(`{3,}|~{3,})\s*([^\s`]*)", line):
                        fence, lang, body = m.group(1), m.group(2).lower(), []
                elif line.strip().startswith(fence) and not line.strip().strip(fence[0]):
                    fence = None
                    if lang not in OTHER_LANGUAGES:
                        count[heading] = count.get(heading, 0) + 1
                        text = textwrap.dedent("\n".join(body))
                        blocks.append(Block(f"{rel}#{heading}-{count[heading]}", lang, text))
                else:
                    body.append(line)
    return blocks


def _runs(settings: str, command: str = "monai.bundle run") -> tuple[str, str]:
    """The tiny settings right after every ``command`` of a block; the doc's own later options still win."""
    return (command, f"{command} {settings}")


def skin(epochs: int = 1, samples: int = 4, tracking: bool = False) -> str:
    return (f"--epochs {epochs} --synthetic_samples {samples} --image_size 32 --batch_size 2"
            + ("" if tracking else " --tracking_uri null"))


# DDP validation shards without padding (even_divisible false): 2 validation images at least, one a rank
SKIN_DDP = skin(samples=10)


CHEST_TINY = "--epochs 1 --synthetic_samples 8 --image_size 32 --batch_size 4 --num_cam_images 1 --tracking_uri null"
SEG3D_TINY = "--epochs 1 --synthetic_samples 4 --synthetic_size 32 --tracking_uri null"
SEG3D_DDP = SEG3D_TINY.replace("--synthetic_samples 4", "--synthetic_samples 8")  # 2 validation volumes
SERVE = " && await_http http://127.0.0.1:$PORT_A"  # the rest of a server's line: wait until it answers
HC18_TINY = (("--image_size 128 --norm batch", "--image_size 32 --norm batch"), ("--fold 0 --epochs 5", "--fold 0"))
SKIN_B, CHEST_B, SEG3D_B = f"B={SKIN}", f"B={CHEST}", f"B={SEG3D}"
# the newest training run of the skin bundle's default store (what a reader copies from `mlflow ui`)
RUN_ID = (
    "RUN_ID=$(python -c \"import sqlite3; print(sqlite3.connect('$B/runs/mlflow.db').execute("
    "\\\"select run_uuid from runs where name like 'train_%' order by start_time desc\\\").fetchone()[0])\")"
)
PIP = "installs the project from the package index; .ci/run runs this line on a clean clone"

NOT_SHELL = {
    "README.md#monai_srb-1": "the block's equation",
    "bundles/srb_3d_segmentation/docs/README.md#srb_3d_segmentation-1": "the block's equation",
}

SKIP = {
    "README.md#quick-start-2": "the lint and the whole test suite: what .ci/run runs, and this test is one of them",
    "README.md#quick-start-3": "the fast tests (3 min): the suite .ci/run runs, which this test belongs to",
    "CONTRIBUTING.md#set-up-1": PIP,
}

TINY = {
    "README.md#quick-start-1": Tiny(
        drop=(('python -m venv .venv && .venv/bin/pip install -q -c constraints.txt -e ".[test]"', PIP),),
        subs=(_runs(skin(tracking=True)),),  # tracked: README.md#mlflow-1 reads its store
        checks=f"test -f {SKIN}/runs/models/model.pt && test -f {SKIN}/runs/mlflow.db",
    ),
    "README.md#quick-start-4": Tiny(
        subs=((".venv/bin/mkdocs serve", f"background .venv/bin/mkdocs serve --dev-addr 127.0.0.1:$PORT_A{SERVE}"),),
        checks="test -f site/index.html",
    ),
    "README.md#bundles-1": Tiny(
        subs=(_runs(SKIN_DDP), ("--epochs 40 --image_size 256", "")),
        checks=f"test -f {SKIN}/runs/eval/metrics.csv && ls {SKIN}/runs/predictions/*_segmentation.png",
    ),
    "README.md#bundles-2": Tiny(after="README.md#bundles-1", prelude=SKIN_B),
    "README.md#pytorch-2-torchcompile-1": Tiny(
        prelude=SKIN_B,
        # dynamo traces the bundle's compiled network as in a real run; inductor's code generation (a minute
        # here) is what tests/bundles/test_skin_lesion_bundle.py's compiled run checks
        subs=(("--epochs 2", "--epochs 1 --tracking_uri null --compile_kwargs \"{'backend': 'eager'}\""),),
    ),
    "README.md#mlflow-1": Tiny(
        after="README.md#quick-start-1",
        prelude=f"{SKIN_B}\n{RUN_ID}",
        subs=(
            ("<run_id>", "$RUN_ID"),
            (
                ".venv/bin/mlflow ui --backend-store-uri sqlite:///$B/runs/mlflow.db",
                f"background .venv/bin/mlflow ui --backend-store-uri sqlite:///$B/runs/mlflow.db --port $PORT_A{SERVE}"
                " && stop_server",
            ),
            ('PATH="$PWD/.venv/bin:$PATH" .venv/bin/mlflow models serve',
             'background env PATH="$PWD/.venv/bin:$PATH" .venv/bin/mlflow models serve'),
            ("--port 5001", f"--port $PORT_A{SERVE}/ping"),
            ("curl -s localhost:5001", "curl -sf localhost:$PORT_A"),  # -f: an HTTP error fails the block
            ("| head -c 200", "> answer.json; head -c 200 answer.json"),  # head would cut curl's pipe (pipefail)
        ),
        checks="grep -q '\"predictions\"' answer.json",
    ),
    "README.md#an-installed-package-monai-srb-1": Tiny(
        subs=(_runs(skin()),),
        checks="test -f exported/model.ts && test -f exported/model.onnx",
    ),
    "README.md#experiment-grids-1": Tiny(
        subs=(
            ("--preset smoke --out runs/experiments/smoke --cpus 2 --threads 1",
             "--preset smoke --out runs/experiments/smoke --cpus 2 --threads 1 --variants U-Net 'U-Net + 1 SRB_F' "
             "--seeds 0 --set epochs=1 synthetic_samples=4"),
            ("mlflow server --backend-store-uri", "background mlflow server --backend-store-uri"),
            ("--host 0.0.0.0 --port 5000 --workers 1",
             f"--host 127.0.0.1 --port $PORT_A --workers 1{SERVE}/health && stop_server"),
        ),
        drop=(
            ("ray start --head --port 6379", "a Ray cluster of several machines"),
            ("ray start --address <head-ip>:6379", "a Ray cluster of several machines"),
            ("python -m workflows.run_experiments --grid $G --preset full --out runs/experiments/isic_full \\\n"
             "    --address auto --tracking_uri http://<server-ip>:5000", "the full grid (hours) on that cluster"),
        ),
        checks="test -f runs/experiments/smoke/results.md",
    ),
    "README.md#export-torchexport-torchscript-and-onnx-1": Tiny(
        after="README.md#quick-start-1",
        checks="test -f exported/model.ts && test -f exported/model.onnx && test ! -e exported/model.onnx.data",
    ),
    "README.md#export-torchexport-torchscript-and-onnx-2": Tiny(
        after="README.md#export-torchexport-torchscript-and-onnx-1",
    ),
    "README.md#cost-the-papers-table-3-1": Tiny(),
    f"{SEG3D}/docs/README.md#run-1": Tiny(
        subs=(
            _runs(SEG3D_DDP),
            ("/path/to/nifti_folder", "$B/runs/synthetic_data/imagesTs"),
            ("/path/to/out", "predictions_alone"),
        ),
        checks=f"ls predictions_alone/*_seg.nii.gz && test -f {SEG3D}/runs/models/model.ts",
    ),
    f"{SEG3D}/docs/README.md#msd-task04-hippocampus-real-mri-1": Tiny(
        prelude=SEG3D_B,
        subs=(_runs(SEG3D_TINY), ("--epochs 10", ""), ("/path/to/nifti_folder", "$D/imagesTr")),
    ),
    f"{CHEST}/docs/README.md#commands-1": Tiny(
        subs=(
            _runs(CHEST_TINY),
            _runs("--image_size 32", "monai.bundle ckpt_export network_def"),
            ("/path/to/pngs", "$B/runs/synthetic_data/images"),
            ("/path/to/out", "predictions_alone"),
            ("torchrun --nproc_per_node=2", "torchrun --master_port $PORT_A --nproc_per_node=2"),  # a free port
        ),
        checks="test -f predictions_alone/predictions.csv && test -f model.ts",
    ),
    f"{CHEST}/docs/README.md#real-data-1": Tiny(
        prelude=CHEST_B,
        subs=(
            _runs(CHEST_TINY),
            ("/data/ChestX-ray14", "../shared/data/chestxray14"),
            # and the two options the comment under it names, on the same run
            ("--image_size 224 --epochs 100 --batch_size 32 --num_workers 8",
             "--num_workers 2 --patient_wise true --require_images false"),
            ("--image_size 64", ""),
        ),
    ),
    f"{CHEST}/docs/README.md#resnet-50-instead-of-densenet-121-1": Tiny(prelude=CHEST_B, subs=(_runs(CHEST_TINY),)),
    f"{SKIN}/docs/README.md#commands-1": Tiny(subs=(_runs(skin()),)),
    f"{SKIN}/docs/README.md#commands-2": Tiny(
        subs=(_runs(skin()), ("--image_size 256 --epochs 50 --output_dir", "--output_dir")),
        checks="test -f runs/isic/models/model.pt",
    ),
    f"{SKIN}/docs/README.md#commands-3": Tiny(
        after=f"{SKIN}/docs/README.md#commands-1",
        subs=(_runs(skin(epochs=2)), ("checkpoint_epoch=3.pt", "checkpoint_epoch=1.pt")),
        checks=f"test -f '{SKIN}/runs/models/checkpoint_epoch=2.pt'",
    ),
    f"{SKIN}/docs/README.md#commands-4": Tiny(after=f"{SKIN}/docs/README.md#commands-1", subs=(_runs(skin()),)),
    f"{SKIN}/docs/README.md#commands-5": Tiny(subs=(_runs(skin()), *HC18_TINY)),
    f"{SKIN}/docs/README.md#commands-6": Tiny(
        after=f"{SKIN}/docs/README.md#commands-1",
        subs=(
            _runs(skin()),
            ("path/to/images", f"{SKIN}/runs/synthetic_data/images"),
            ("path/to/model.pt", f"{SKIN}/runs/models/model.pt"),
        ),
        checks="ls path/to/masks/*_segmentation.png",
    ),
    f"{SKIN}/docs/README.md#commands-7": Tiny(
        subs=(_runs(SKIN_DDP), ("torchrun --nproc_per_node 2", "torchrun --master_port $PORT_A --nproc_per_node 2")),
    ),
    f"{SKIN}/docs/README.md#commands-8": Tiny(
        after=f"{SKIN}/docs/README.md#commands-1",
        subs=(_runs("--image_size 32", "monai.bundle ckpt_export network_def"),),
        checks="test -f model.ts",
    ),
}



def _package(settings: str, inference: str, predictions: str, zoo: str) -> Tiny:
    """A ``monai-srb package`` block: a tracked tiny training (package reads its MLflow run), then the zoo copy's
    inference on a few images, given no network override, so the packaged configs must hold them."""
    train = "OMP_NUM_THREADS=2 python -m monai.bundle run"
    return Tiny(
        subs=((train, f"{train} {settings.replace(' --tracking_uri null', '')}"),
              ("--output_dir runs/zoo_inference", f"--output_dir runs/zoo_inference {inference}")),
        checks=f"test -f {zoo}/models/model.pt && test -f {zoo}/large_files.yml && ls runs/zoo_inference/predictions/"
               f"{predictions}",
    )


TINY.update({
    f"{SKIN}/docs/README.md#package-for-the-model-zoo-1": _package(
        skin(), "--synthetic_samples 4", "*_segmentation.png", "zoo/srb_skin_lesion_segmentation"),
    f"{CHEST}/docs/README.md#package-for-the-model-zoo-1": _package(
        CHEST_TINY, "--synthetic_samples 8", "predictions.csv", "zoo/srb_chest_xray_classification"),
    f"{SEG3D}/docs/README.md#package-for-the-model-zoo-1": _package(
        SEG3D_TINY, "--synthetic_samples 2 --synthetic_size 32", "*_seg.nii.gz", "zoo/srb_3d_segmentation"),
})

# bash helpers every block gets: servers in their own process group, their ids in $SERVER_PIDS for the test
HELPERS = r"""
SERVERS=()
background() {
    setsid "$@" > "server_${#SERVERS[@]}.log" 2>&1 &
    SERVERS+=("$!"); echo "$!" >> "$SERVER_PIDS"
}
await_http() {
    local pid=${SERVERS[-1]} log="server_$((${#SERVERS[@]} - 1)).log"
    for _ in $(seq 240); do
        curl -s -o /dev/null "$1" && return 0
        kill -0 "$pid" 2> /dev/null || { cat "$log" >&2; echo "server $pid ended before $1 answered" >&2; return 1; }
        sleep 0.5
    done
    cat "$log" >&2; echo "$1 did not answer within 120 s" >&2; return 1
}
stop_server() { kill -- "-${SERVERS[-1]}"; }
trap 'for p in "${SERVERS[@]}"; do kill -- "-$p" 2> /dev/null || true; done' EXIT
"""


def _apply(block: Block, tiny: Tiny) -> str:
    """The block's text with the table's substitutions; each must match, or the test names it."""
    text = block.text
    if block.lang == "console":  # the commands after the prompts, with their continuation lines
        lines, keep = [], False
        for line in text.splitlines():
            if line.startswith("$ ") or keep:
                lines.append(line[2:] if line.startswith("$ ") else line)
                keep = line.endswith("\\")
        text = "\n".join(lines)
    for old, new in tiny.subs:
        if old not in text:
            pytest.fail(f"{block.name}: the substitution {old!r} -> {new!r} of TINY no longer matches the block; "
                        f"update TINY to the doc:\n{block.text}")
        text = text.replace(old, new)
    for old, why in tiny.drop:
        if old not in text:
            pytest.fail(f"{block.name}: the dropped command {old!r} ({why}) of TINY no longer matches the block:\n"
                        f"{block.text}")
        text = text.replace(old, f": not run here, {shlex.quote(why)}")
    return text


def _file_name(name: str) -> str:
    return re.sub(r"\W+", "_", name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_tiny_data(data: Path) -> None:
    """Tiny data sets in the layouts of those the docs name under ../shared/data."""
    from PIL import Image, ImageDraw

    from monai_srb.data import make_synthetic_decathlon, make_synthetic_skin_lesions, write_synthetic_chestxray14

    isic = data / "isic2017_sample"
    make_synthetic_skin_lesions(isic, num_samples=6, image_size=(24, 32))
    with open(isic / "labels.csv", "w", newline="") as f:  # ISIC's diagnoses, which the bundle must ignore
        rows = [[p.stem, 0, 0] for p in sorted((isic / "images").iterdir())]
        csv.writer(f).writerows([["image_id", "melanoma", "seborrheic_keratosis"], *rows])
    hc18 = data / "hc18"  # grayscale scans, several of one subject (008_HC, 008_2HC), head masks, labels.csv
    (hc18 / "images").mkdir(parents=True)
    (hc18 / "masks").mkdir()
    rng = np.random.default_rng(0)
    ids = [f"{i:03d}_HC" for i in range(9)] + ["008_2HC"]
    for k, name in enumerate(ids):
        mask = Image.new("L", (40, 27))
        ImageDraw.Draw(mask).ellipse((6 + k % 3, 4, 32, 22), fill=255)
        scan = (np.asarray(mask) * 0.5 + rng.integers(0, 80, (27, 40))).astype(np.uint8)
        Image.fromarray(scan, mode="L").save(hc18 / "images" / f"{name}.png")
        mask.save(hc18 / "masks" / f"{name}_mask.png")
    with open(hc18 / "labels.csv", "w", newline="") as f:
        rows = [[n, 0.5, 40.0] for n in ids]
        csv.writer(f).writerows([["image_id", "pixel_size_mm", "head_circumference_mm"], *rows])
    make_synthetic_decathlon(data / "msd_hippocampus", num_train=4, num_test=0, size=32)
    write_synthetic_chestxray14(data / "chestxray14", num_samples=10, image_size=32)
    npz = {}
    for split, n in (("train", 14), ("val", 7), ("test", 7)):  # two of each of DermaMNIST's 7 classes in training
        npz[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28, 3), dtype=np.uint8)
        npz[f"{split}_labels"] = (np.arange(n) % 7).reshape(n, 1)
    np.savez(data / "dermamnist.npz", **npz)


@pytest.fixture(scope="session")
def workspace(tmp_path_factory):
    """Runs the blocks: each in a fresh copy of the repository's layout, or in the folder of its ``after`` block."""
    base = tmp_path_factory.mktemp("documented")
    _write_tiny_data(base / "shared" / "data")
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    top = sorted({p.split("/")[0] for p in tracked.splitlines()} | {".venv"})
    folders: dict[str, Path] = {}
    failed: dict[str, str] = {}

    def fresh(name: str) -> Path:
        work = base / _file_name(name) / "repo"
        work.mkdir(parents=True)
        (work.parent / "shared").symlink_to(base / "shared")  # ../shared/data as the docs name it
        for entry in top:
            source = ROOT / entry
            if entry == "bundles":  # a copy: a bundle writes to <bundle_root>/runs by default
                shutil.copytree(source, work / entry, ignore=shutil.ignore_patterns("runs", "__pycache__"))
            elif source.is_file():  # a copy: mkdocs writes its site/ beside the mkdocs.yml it reads
                shutil.copy2(source, work / entry)
            elif source.exists():
                (work / entry).symlink_to(source)
        return work

    def run(name: str) -> Path:
        if name in failed:
            pytest.fail(f"{name} already failed in this session ({failed[name]}), so what runs after it cannot")
        if name in folders:
            return folders[name]
        if name in SKIP or name not in TINY:
            pytest.fail(f"{name} is in TINY as the block another runs after, but it is skipped or unknown")
        block = {b.name: b for b in documented_blocks()}[name]
        tiny = TINY[name]
        work = run(tiny.after) if tiny.after else fresh(name)
        script = "\n".join([HELPERS, tiny.prelude, _apply(block, tiny), tiny.checks, ""])
        (work / f"{_file_name(name)}.sh").write_text(script)
        pids = work / "server_pids.txt"
        env = {**os.environ, "PATH": f"{work / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
               "VIRTUAL_ENV": str(work / ".venv"), "SERVER_PIDS": str(pids), "PORT_A": str(_free_port()),
               "MPLBACKEND": "Agg", "PYTHONUNBUFFERED": "1"}
        env.pop("MLFLOW_TRACKING_URI", None)
        proc = subprocess.Popen(["bash", "-euo", "pipefail", "-c", script], cwd=work, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=BLOCK_TIMEOUT)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            proc.returncode = f"killed after {BLOCK_TIMEOUT} s"
        finally:  # the servers the block started, by their ids, should its own trap not have run
            for pid in pids.read_text().split() if pids.exists() else ():
                try:
                    os.killpg(int(pid), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            pids.unlink(missing_ok=True)
        log = work / f"{_file_name(name)}.log"
        log.write_text(out)
        if proc.returncode != 0:
            failed[name] = f"exit {proc.returncode}"
            # a failed bundle run's cause comes first, MONAI's chain of config errors after it
            errors = (line for line in out.splitlines() if re.match(r"(\[rank\d\]: )?\w+(Error|Exception): ", line))
            causes = "\n".join(errors)
            pytest.fail(f"{name} failed (exit {proc.returncode}) in {work}; the script ran:\n{script}\n"
                        f"--- the errors it printed ---\n{causes[-3000:]}\n"
                        f"--- its output (last 5000 characters; all of it in {log}) ---\n{out[-5000:]}")
        folders[name] = work
        return work

    return run


BLOCKS = documented_blocks()


def _chain(name: str) -> str:
    """The first block of the ``after`` chain a block belongs to."""
    while name in TINY and TINY[name].after:
        name = TINY[name].after
    return name


# Under pytest-xdist (--dist loadgroup) a chain runs in one worker: the workspace is per worker, so a block whose
# ``after`` ran in another would run that block again.
PARAMS = [pytest.param(b, id=b.name, marks=pytest.mark.xdist_group(_file_name(_chain(b.name)))) for b in BLOCKS]


@pytest.mark.parametrize("block", PARAMS)
def test_documented_shell_block_runs(block, workspace):
    if block.name in NOT_SHELL:
        pytest.skip(f"not shell: {NOT_SHELL[block.name]}")
    if block.lang not in SHELL_LANGUAGES | {""}:
        pytest.fail(f"{block.name}: the fence language {block.lang!r} is neither shell ({sorted(SHELL_LANGUAGES)}) nor "
                    f"one of OTHER_LANGUAGES; decide which it is in tests/test_documented_shell_blocks.py")
    if block.name in SKIP:
        pytest.skip(SKIP[block.name])
    if block.name not in TINY:
        pytest.fail(f"{block.name} is a documented shell block this test does not know: add it to TINY in "
                    f"tests/test_documented_shell_blocks.py (the substitutions that make it run in seconds) or to "
                    f"SKIP (the reason it cannot run here):\n{block.text}")
    workspace(block.name)


def test_the_tables_name_documented_blocks():
    names = {b.name for b in BLOCKS}
    for table in ("TINY", "SKIP", "NOT_SHELL"):
        stale = sorted(set(globals()[table]) - names)
        assert not stale, f"{table} names blocks the docs no longer have: {stale}"
    assert not set(TINY) & set(SKIP), sorted(set(TINY) & set(SKIP))
    for name, tiny in TINY.items():
        assert tiny.after is None or tiny.after in TINY, (name, tiny.after)
