"""
Speed and memory of SRB against the blocks it replaces or competes with (issue: performance suite).

For each block at each size, in one process: median forward+backward time over ``--repeats`` runs after
``--warmup`` runs, and peak memory. On CUDA, peak memory is ``torch.cuda.max_memory_allocated``; on CPU,
where PyTorch exposes no allocator statistics, it is the bytes of the tensors autograd keeps for backward
plus the output (the activation memory a training step holds at its peak), counted with saved-tensor hooks.
A block whose estimated memory does not fit (Non-local's N x N attention at large 3D sizes) is reported as
such instead of being run. Also the training-step time and inference latency of SRBUNet (+4 SRB_F) against
the plain U-Net.

    python -m workflows.benchmark                      # full grid, CSV + markdown + PNG into docs/benchmark
    python -m workflows.benchmark --preset targets     # only the figures the performance targets name
    python -m workflows.benchmark --preset smoke       # seconds; what the tests run
    python -m workflows.benchmark --preset targets --breakdown 128   # and where SRB_F's time goes at 128^2
    python -m workflows.benchmark --preset targets --compiled        # eager against torch.compile (inductor)

``--compiled`` times, side by side in one process, SRB_F, A²-Net, Non-local and a 3x3 conv eager and under
``torch.compile`` (forward + backward at the 2D target size), and the U-Net and SRBUNet (+4 SRB_F) training
steps eager and compiled; the compile time (the first call) is reported apart. It writes ``<out>/compiled.md``
and ``<out>/compiled.csv`` and, for a compiled target that is missed, the profiler's top operators of the
compiled SRB_F step (``<out>/compiled_profile.md``).

Writes ``<out>/blocks.csv``, ``<out>/blocks.md``, ``<out>/blocks.png`` and ``<out>/networks.csv``; prints the
markdown tables and the target ratios.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from monai.networks.blocks import SABlock
from monai.networks.layers.factories import Conv
from torch import nn
from torch.utils import benchmark as torch_benchmark

from monai_srb.blocks import make_block
from monai_srb.nets.srb_unet import SRBUNet

BLOCKS = ("srb_fft", "srb_aom", "srb_dct", "nonlocal", "double_attention", "sablock", "conv3x3")
PRESETS = {
    # name: (2D sizes, 2D channels, 3D sizes, 3D channels, network size or 0)
    "full": ((32, 64, 128, 256), 64, (16, 32, 48, 64, 96), 32, 256),
    "targets": ((128,), 64, (), 32, 256),
    "smoke": ((16,), 8, (8,), 4, 32),
}


class TokenSABlock(nn.Module):
    """MONAI's ``SABlock`` (a transformer self-attention layer on (B, N, C) tokens) on a feature map."""

    def __init__(self, channels: int, num_heads: int = 4) -> None:
        super().__init__()
        self.attn = SABlock(channels, num_heads=num_heads)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.flatten(2).transpose(1, 2)
        return x + self.attn(tokens).transpose(1, 2).reshape(x.shape)


def build(name: str, spatial_dims: int, channels: int, size: int) -> nn.Module:
    if name == "conv3x3":
        return Conv[Conv.CONV, spatial_dims](channels, channels, kernel_size=3, padding=1)
    if name == "sablock":
        return TokenSABlock(channels)
    return make_block(name, spatial_dims, channels, spatial_size=(size,) * spatial_dims)


def estimated_bytes(name: str, batch: int, channels: int, positions: int) -> int:
    """A lower bound on the training memory of the attention blocks: the N x N maps they store."""
    if name in ("nonlocal", "sablock"):
        heads = 4 if name == "sablock" else 1
        return 3 * batch * heads * positions * positions * 4
    return 0


@dataclass
class Row:
    block: str
    spatial_dims: int
    size: int
    pixels: int
    channels: int
    batch: int
    time_ms: float | None
    peak_mb: float | None
    note: str = ""
    page_faults: float | None = None  # minor page faults per timed step (CPU): fresh memory the allocator maps


def saved_bytes(fn: Callable[[], torch.Tensor]) -> int:
    """Bytes of the tensors autograd saves for backward during ``fn()``, plus its output."""
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return sum(seen.values()) + out.numel() * out.element_size()


def minor_faults() -> int:
    """Minor page faults of this process so far (0 where ``resource`` is missing, e.g. Windows)."""
    try:
        import resource
    except ImportError:
        return 0
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def time_fn(fn: Callable[[], None], warmup: int, repeats: int, device: torch.device) -> float:
    """
    Median milliseconds of ``fn()`` over ``repeats`` calls after ``warmup`` calls, each call timed by
    ``torch.utils.benchmark.Timer`` (which synchronises CUDA and keeps this process's thread count).
    """
    for _ in range(warmup):
        fn()
    timer = torch_benchmark.Timer(stmt="fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())
    return statistics.median(timer.timeit(1).median for _ in range(max(repeats, 1))) * 1e3


def bench_block(
    name: str, spatial_dims: int, size: int, channels: int, batch: int, device: torch.device, warmup: int, repeats: int
) -> Row:
    pixels = size**spatial_dims
    row = Row(name, spatial_dims, size, pixels, channels, batch, None, None)
    limit = (torch.cuda.get_device_properties(device).total_memory if device.type == "cuda" else _ram()) // 2
    need = estimated_bytes(name, batch, channels, pixels)
    if need > limit:
        row.note = f"does not fit: needs > {need / 2**30:.0f} GiB"
        return row
    torch.manual_seed(0)
    block = build(name, spatial_dims, channels, size).to(device).train()
    x = torch.randn((batch, channels) + (size,) * spatial_dims, device=device, requires_grad=True)

    def step() -> None:
        block(x).sum().backward()
        x.grad = None
        block.zero_grad(set_to_none=True)

    try:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
            step()
            row.peak_mb = torch.cuda.max_memory_allocated(device) / 2**20
        else:
            row.peak_mb = saved_bytes(lambda: block(x)) / 2**20
        faults = minor_faults()
        row.time_ms = time_fn(step, warmup, repeats, device)
        # glibc's malloc hands large freed blocks back to the OS; each step then faults fresh pages in
        row.page_faults = (minor_faults() - faults) / (warmup + repeats)
    except (RuntimeError, MemoryError) as e:  # an allocation failure is a result, not a crash
        row.note = f"failed: {str(e).splitlines()[0][:80]}"
    return row


def bench_networks(size: int, device: torch.device, warmup: int, repeats: int) -> list[dict[str, object]]:
    rows = []
    for label, positions in (("U-Net", ()), ("U-Net + 4 SRB_F", tuple(f"before_up{i}" for i in range(1, 5)))):
        torch.manual_seed(0)
        net = SRBUNet(2, 3, 2, srb_positions=positions, spatial_size=size).to(device)
        opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4)
        x = torch.randn(2, 3, size, size, device=device)
        y = torch.randint(0, 2, (2, size, size), device=device)

        def train_step() -> None:
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(net(x), y).backward()
            opt.step()

        net.train()
        train_ms = time_fn(train_step, warmup, repeats, device)
        net.eval()
        with torch.no_grad():
            infer_ms = time_fn(lambda: net(x[:1]), warmup, repeats, device)
        params = sum(p.numel() for p in net.parameters())
        rows.append(
            {"network": label, "size": size, "params": params, "train_step_ms": train_ms, "inference_ms": infer_ms}
        )
    return rows


class _SkipPhi(nn.Module):
    def forward(self, z: torch.Tensor, spatial_size: list[int]) -> torch.Tensor:
        return z


def srb_breakdown(
    size: int, channels: int, batch: int, device: torch.device, warmup: int, repeats: int,
    backend: str | None = None,
) -> list[tuple[str, float]]:
    """
    Where SRB_F's forward+backward time goes, by ablation (timing parts in place, unlike a profiler, adds no
    overhead per op): the whole block, the block with ``phi`` skipped (the FFT, its inverse, the layout
    passes and the residual), with its two batch norms skipped, and ``phi`` alone on a spectrum. With a
    ``backend``, each of these is compiled (``torch.compile``, default mode) as it is timed, after one call that
    compiles it: where the compiled block's time goes, which inductor's fused kernels hide from a profiler.
    """
    torch.manual_seed(0)
    x = torch.randn(batch, channels, size, size, device=device, requires_grad=True)
    block = build("srb_fft", 2, channels, size).to(device).train()
    phi = block.phi

    def timed(module: nn.Module, inputs: tuple[object, ...]) -> float:
        if backend is not None:
            torch._dynamo.reset()
            module = torch.compile(module, backend=backend)

        def step() -> None:
            module(*inputs).sum().backward()
            inputs[0].grad = None

        if backend is not None:
            step()  # the compilation, not timed
        return time_fn(step, warmup, repeats, device)

    rows = [("SRB_F", timed(block, (x,)))]
    block.phi = _SkipPhi()
    rows.append(("FFT path only (phi skipped)", timed(block, (x,))))
    block.phi = phi
    norms = phi.norm_reduce, phi.norm_expand
    phi.norm_reduce, phi.norm_expand = nn.Identity(), nn.Identity()
    rows.append(("SRB_F without phi's two batch norms", timed(block, (x,))))
    phi.norm_reduce, phi.norm_expand = norms
    z = block.f(x.detach()).requires_grad_()
    rows.append(("phi alone", timed(_PhiAt(phi, [size, size]), (z,))))
    for name in ("conv3x3", "double_attention"):
        other = build(name, 2, channels, size).to(device).train()
        rows.append((name, timed(other, (x,))))
    return rows


class _PhiAt(nn.Module):
    """``phi`` on a spectrum of one spatial size, as a module ``torch.compile`` can wrap."""

    def __init__(self, phi: nn.Module, spatial: list[int]) -> None:
        super().__init__()
        self.phi, self.spatial = phi, spatial

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.phi(z, self.spatial)


COMPILED_BLOCKS = ("srb_fft", "double_attention", "nonlocal", "conv3x3")


def eager_and_compiled(
    module: nn.Module, step: Callable[[nn.Module], Callable[[], None]], name: str, warmup: int, repeats: int,
    device: torch.device, backend: str,
) -> dict[str, float]:
    """
    ``step(module)`` timed eager, then ``step(torch.compile(module))``: its first call (the compilation,
    ``compile_s``) apart from the timed calls after it. Prints one line.
    """
    eager_ms = time_fn(step(module), warmup, repeats, device)
    torch._dynamo.reset()
    compiled = step(torch.compile(module, backend=backend))
    start = time.perf_counter()
    compiled()
    compile_s = time.perf_counter() - start
    compiled_ms = time_fn(compiled, warmup, repeats, device)
    print(f"{name:<18} eager {eager_ms:9.2f} ms  compiled {compiled_ms:9.2f} ms  compile {compile_s:6.1f} s",
          flush=True)
    return {"eager_ms": eager_ms, "compiled_ms": compiled_ms, "compile_s": compile_s}


def bench_compiled_blocks(
    size: int, channels: int, batch: int, device: torch.device, warmup: int, repeats: int, backend: str = "inductor"
) -> list[dict[str, object]]:
    """
    Forward+backward of each of :data:`COMPILED_BLOCKS` at ``size``² with ``channels`` channels, eager and under
    ``torch.compile`` (``backend``, default mode), side by side; ``compile_s`` is the compiled first call.
    """
    rows = []
    for name in COMPILED_BLOCKS:
        torch.manual_seed(0)
        block = build(name, 2, channels, size).to(device).train()
        x = torch.randn(batch, channels, size, size, device=device, requires_grad=True)

        def step(module: nn.Module) -> Callable[[], None]:
            def run() -> None:
                module(x).sum().backward()
                x.grad = None
                block.zero_grad(set_to_none=True)

            return run

        times = eager_and_compiled(block, step, name, warmup, repeats, device, backend)
        rows.append({"name": name, "size": size, "channels": channels, "batch": batch, **times})
    return rows


def bench_compiled_networks(
    size: int, device: torch.device, warmup: int, repeats: int, backend: str = "inductor"
) -> list[dict[str, object]]:
    """The U-Net and SRBUNet (+4 SRB_F) training steps (Adam, batch 2, ``size``²), eager and compiled."""
    rows = []
    for label, positions in (("U-Net", ()), ("U-Net + 4 SRB_F", tuple(f"before_up{i}" for i in range(1, 5)))):
        torch.manual_seed(0)
        net = SRBUNet(2, 3, 2, srb_positions=positions, spatial_size=size).to(device).train()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4)
        x = torch.randn(2, 3, size, size, device=device)
        y = torch.randint(0, 2, (2, size, size), device=device)

        def train_step(module: nn.Module) -> Callable[[], None]:
            def run() -> None:
                opt.zero_grad(set_to_none=True)
                nn.functional.cross_entropy(module(x), y).backward()
                opt.step()

            return run

        times = eager_and_compiled(net, train_step, label, warmup, repeats, device, backend)
        rows.append({"name": label, "size": size, "channels": 3, "batch": 2, **times})
    return rows


def _ratios(at: dict[str, float], specs: list[tuple[str, str, str]]) -> dict[str, float]:
    """``{label: at[a] / at[b]}`` for each ``(label, a, b)`` whose two times were measured."""
    return {label: at[a] / at[b] for label, a, b in specs if a in at and b in at}


def compiled_targets(rows: list[dict[str, object]]) -> dict[str, float]:
    """The compiled ratios issue 22 sets targets for, from :func:`bench_compiled_blocks` and networks rows."""
    return _ratios({str(r["name"]): float(r["compiled_ms"]) for r in rows}, [
        ("compiled SRB_F / compiled A2-Net (target <= 1.0)", "srb_fft", "double_attention"),
        ("compiled SRB_F / compiled conv3x3 (target <= 0.9)", "srb_fft", "conv3x3"),
        ("compiled SRBUNet / compiled U-Net train step (target <= 1.05)", "U-Net + 4 SRB_F", "U-Net"),
    ])


# operator name -> the part of SRB_F it belongs to, for the compiled profile (first match wins)
_PARTS = (
    (("aten::_fft_",), "FFT"),
    (("aten::copy_", "aten::clone", "aten::contiguous", "aten::_to_copy"), "copies"),
    (("aten::bmm", "aten::mm", "aten::convolution", "mkldnn", "aten::addmm"), "phi (1x1 group convs)"),
    (("CompiledFxGraph", "cpp_fused", "triton_"), "inductor's fused kernels (phi's norms, ReLU, layouts, residual)"),
)


def _part(operator: str) -> str:
    return next((part for keys, part in _PARTS if any(k in operator for k in keys)), "other")


def compiled_profile(
    size: int, channels: int, batch: int, device: torch.device, backend: str = "inductor", top: int = 12,
    warmup: int = 3, repeats: int = 10,
) -> str:
    """
    Where the compiled SRB_F step's time goes, two ways: :func:`srb_breakdown` compiled (the block, its FFT path
    without ``phi``, without ``phi``'s norms, ``phi`` alone), and ``torch.profiler``'s operators by self time over
    5 steps after compiling, each named by the part it belongs to (FFTs are ``aten::_fft_*``, inductor's fused
    kernels run inside its ``CompiledFxGraph`` calls, the 1x1 convs as ``aten::bmm`` / ``aten::convolution``), as
    markdown.
    """
    parts = srb_breakdown(size, channels, batch, device, warmup, repeats, backend=backend)
    lines = [f"Compiled SRB_F at {size}², C={channels}, batch {batch} (`torch.compile`, backend {backend}): "
             "forward+backward by ablation, each part compiled", "", "| part | compiled ms |", "|---|---|",
             *(f"| {name} | {ms:.2f} |" for name, ms in parts)]
    torch.manual_seed(0)
    torch._dynamo.reset()
    block = torch.compile(build("srb_fft", 2, channels, size).to(device).train(), backend=backend)
    x = torch.randn(batch, channels, size, size, device=device, requires_grad=True)
    for _ in range(2):
        block(x).sum().backward()
    activities = [torch.profiler.ProfilerActivity.CPU] + (
        [torch.profiler.ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(5):
            block(x).sum().backward()
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    events.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    shares: dict[str, float] = {}
    for e in events:
        shares[_part(e.key)] = shares.get(_part(e.key), 0.0) + e.self_cpu_time_total
    lines += ["", "Operators by self CPU time over 5 compiled forward+backward steps, summed by part", "",
              "| part | self ms / step | share |", "|---|---|---|",
              *(f"| {part} | {t / 5e3:.2f} | {t / total:.0%} |"
                for part, t in sorted(shares.items(), key=lambda kv: -kv[1])),
              "", "| operator | part | calls | self ms / step | share |", "|---|---|---|---|---|"]
    for e in events[:top]:
        name = "inductor graph (`CompiledFxGraph`)" if "CompiledFxGraph" in e.key else f"`{e.key}`"
        lines.append(f"| {name} | {_part(e.key)} | {e.count // 5} | {e.self_cpu_time_total / 5e3:.2f} | "
                     f"{e.self_cpu_time_total / total:.0%} |")
    return "\n".join(lines)


def write_compiled(rows: list[dict[str, object]], out: str, profile: str | None) -> str:
    """Write ``compiled.csv`` and ``compiled.md`` (and ``compiled_profile.md``) into ``out``; return the table."""
    with open(os.path.join(out, "compiled.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| block or network | size | eager ms | compiled ms | compiled / eager | compile s |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['name']} | {r['size']}² | {float(r['eager_ms']):.2f} | {float(r['compiled_ms']):.2f} | "
                     f"{float(r['compiled_ms']) / float(r['eager_ms']):.2f} | {float(r['compile_s']):.1f} |")
    lines += ["", *(f"- {k}: **{v:.2f}**" for k, v in compiled_targets(rows).items())]
    table = "\n".join(lines)
    with open(os.path.join(out, "compiled.md"), "w") as f:
        f.write(table + "\n")
    if profile is not None:
        with open(os.path.join(out, "compiled_profile.md"), "w") as f:
            f.write(profile + "\n")
    return table


def _ram() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def markdown(rows: list[Row]) -> str:
    lines = [
        "| block | dims | size | C | time fwd+bwd (ms) | peak memory (MiB) | page faults / step | note |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t = f"{r.time_ms:.2f}" if r.time_ms is not None else "—"
        m = f"{r.peak_mb:.1f}" if r.peak_mb is not None else "—"
        pf = f"{r.page_faults:.0f}" if r.page_faults is not None else "—"
        lines.append(f"| {r.block} | {r.spatial_dims}D | {r.size} | {r.channels} | {t} | {m} | {pf} | {r.note} |")
    return "\n".join(lines)


def plot(rows: list[Row], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for col, dims in enumerate((2, 3)):
        for name in BLOCKS:
            pts = [r for r in rows if r.block == name and r.spatial_dims == dims and r.time_ms is not None]
            if not pts:
                continue
            axes[0, col].loglog([r.pixels for r in pts], [r.time_ms for r in pts], "o-", label=name)
            axes[1, col].loglog([r.pixels for r in pts], [r.peak_mb for r in pts], "o-", label=name)
        axes[0, col].set_title(f"{dims}D: forward+backward time")
        axes[1, col].set_title(f"{dims}D: peak memory")
        axes[0, col].set_ylabel("ms")
        axes[1, col].set_ylabel("MiB")
        for ax in axes[:, col]:
            ax.set_xlabel("pixels" if dims == 2 else "voxels")
            ax.grid(True, which="both", alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def target_ratios(rows: list[Row], nets: list[dict[str, object]]) -> dict[str, float]:
    at = {r.block: r.time_ms for r in rows if r.spatial_dims == 2 and r.size == 128 and r.time_ms is not None}
    ratios = _ratios(at, [("SRB_F / conv3x3 (target <= 1.2)", "srb_fft", "conv3x3"),
                          ("SRB_F / A2-Net (target <= 1.0)", "srb_fft", "double_attention"),
                          ("Non-local / SRB_F (target >= 20)", "nonlocal", "srb_fft")])
    if len(nets) == 2:
        train_ratio = float(nets[1]["train_step_ms"]) / float(nets[0]["train_step_ms"])
        ratios["SRBUNet / U-Net train step (target <= 1.10)"] = train_ratio
    return ratios


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="python -m workflows.benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="full")
    parser.add_argument("--blocks", nargs="+", choices=BLOCKS, default=list(BLOCKS))
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", default="docs/benchmark")
    parser.add_argument("--compiled", action="store_true",
                        help="also time eager against torch.compile (compiled.md, compiled.csv)")
    parser.add_argument("--backend", default="inductor", help="torch.compile's backend for --compiled")
    parser.add_argument(
        "--breakdown", type=int, default=0, metavar="SIZE", help="also time SRB_F's parts at SIZE^2 (srb_breakdown.md)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sizes2d, c2d, sizes3d, c3d, net_size = PRESETS[args.preset]
    cpu = platform.processor() or platform.machine()
    print(f"torch {torch.__version__}, {cpu}, {args.threads} threads, device {device}")

    rows = []
    for dims, sizes, channels in ((2, sizes2d, c2d), (3, sizes3d, c3d)):
        for size in sizes:
            for name in args.blocks:
                rows.append(bench_block(name, dims, size, channels, args.batch, device, args.warmup, args.repeats))
                print(markdown([rows[-1]]).splitlines()[-1], flush=True)
    nets = bench_networks(net_size, device, args.warmup, args.repeats) if net_size else []

    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "blocks.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(asdict(rows[0])))
        writer.writeheader()
        writer.writerows(asdict(r) for r in rows)
    table = markdown(rows)
    with open(os.path.join(args.out, "blocks.md"), "w") as f:
        f.write(table + "\n")
    plot(rows, os.path.join(args.out, "blocks.png"))
    if nets:
        with open(os.path.join(args.out, "networks.csv"), "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(nets[0]))
            writer.writeheader()
            writer.writerows(nets)
    print("\n" + table + "\n")
    for n in nets:
        print(f"{n['network']:<18} {n['size']}²  params {n['params']:>9,}  "
              f"train step {n['train_step_ms']:.1f} ms  inference {n['inference_ms']:.1f} ms")
    if args.breakdown:
        parts = srb_breakdown(args.breakdown, c2d, args.batch, device, args.warmup, args.repeats)
        lines = [f"SRB_F at {args.breakdown}², C={c2d}, batch {args.batch}: forward+backward (ms)", "",
                 "| part | ms |", "|---|---|"] + [f"| {name} | {ms:.2f} |" for name, ms in parts]
        with open(os.path.join(args.out, "srb_breakdown.md"), "w") as f:
            f.write("\n".join(lines) + "\n")
        print("\n" + "\n".join(lines))
    ratios = target_ratios(rows, nets)
    if args.compiled:
        size = sizes2d[-1]
        compiled = bench_compiled_blocks(size, c2d, args.batch, device, args.warmup, args.repeats, args.backend)
        if net_size:
            compiled += bench_compiled_networks(net_size, device, args.warmup, args.repeats, args.backend)
        targets = compiled_targets(compiled)
        limits = {k: float(k.rsplit("<= ", 1)[1].rstrip(")")) for k in targets}
        missed = any(v > limits[k] for k, v in targets.items())
        profile = None
        if missed:
            profile = compiled_profile(size, c2d, args.batch, device, args.backend, warmup=args.warmup,
                                       repeats=args.repeats)
        print("\n" + write_compiled(compiled, args.out, profile))
        if profile:
            print("\n" + profile)
        ratios.update(targets)
    for k, v in ratios.items():
        print(f"{k}: {v:.2f}")
    return ratios


if __name__ == "__main__":
    main()
