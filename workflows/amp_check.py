"""
Mixed precision: does each SRB run under autocast at sizes cuFFT's half precision cannot take, does it agree
with float32, and what does autocast buy (the GPU part of the performance issue).

    python -m workflows.amp_check                      # CUDA: fp16 at 97 x 131; AMP/fp32 and SRB_F/conv at 256^2
    python -m workflows.amp_check --device cpu --dtype bfloat16 --size 32 --check-size 13 17   # seconds, CPU

1. Agreement. SRB_F, SRB_A and SRB_DCT (C=16, batch 2, alpha 0.5, training mode) take an input of
   ``--check-size`` (non-powers of 2, 97 x 131 by default) in ``--dtype`` under ``torch.autocast``, as they
   would behind a conv in an autocast network. The same values in float32 are the reference. The
   table gives the output's and the input gradient's largest error relative to the reference's largest
   magnitude, and whether both stay under ``--rtol``.
2. Timing. Median forward+backward time of SRB_F and of a 3x3 conv of the same width (C=64, batch 2) at
   ``--size``^2, in float32 and under autocast, with the ratios AMP/fp32 and SRB_F/conv.

Prints a markdown table and writes ``<out>/amp_check.json``; exits 1 when an agreement check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import nullcontext

import torch

from monai_srb.blocks import SpectralResidualBlock
from workflows import benchmark

DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def agreement(
    transform: str, size: list[int], dtype: torch.dtype, device: torch.device, channels: int = 16
) -> tuple[float, float]:
    """Largest |autocast - float32| of the output and of the input gradient, each over the float32 one's max |.|."""
    torch.manual_seed(0)
    block = SpectralResidualBlock(2, channels, transform, spatial_size=size).to(device).train()
    with torch.no_grad():
        block.alpha.fill_(0.5)  # at 0 the block is the identity and would agree trivially
    x = torch.randn(2, channels, *size, device=device).to(dtype)  # what a conv hands on under autocast
    results = []
    for low in (True, False):
        inp = (x if low else x.float()).detach().requires_grad_()
        with torch.autocast(device.type, dtype=dtype) if low else nullcontext():
            y = block(inp)
        (grad,) = torch.autograd.grad(y.float().square().sum(), inp)
        results.append((y.detach().float(), grad.float()))
    (y_low, g_low), (y_ref, g_ref) = results
    return (
        float((y_low - y_ref).abs().max() / y_ref.abs().max()),
        float((g_low - g_ref).abs().max() / g_ref.abs().max()),
    )


def timings(size: int, dtype: torch.dtype, device: torch.device, warmup: int, repeats: int) -> dict[str, float]:
    """Median forward+backward ms of SRB_F and a 3x3 conv (C=64, batch 2) in float32 and under autocast."""
    out = {}
    for name in ("srb_fft", "conv3x3"):
        torch.manual_seed(0)
        block = benchmark.build(name, 2, 64, size).to(device).train()
        x = torch.randn(2, 64, size, size, device=device, requires_grad=True)
        for label, ctx in (("fp32", nullcontext), ("amp", lambda: torch.autocast(device.type, dtype=dtype))):

            def step() -> None:
                with ctx():
                    y = block(x)
                y.float().sum().backward()
                x.grad = None

            out[f"{name} {label}"] = benchmark.time_fn(step, warmup, repeats, device)
    return out


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(prog="python -m workflows.amp_check", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float16")
    parser.add_argument("--check-size", type=int, nargs=2, default=[97, 131], metavar=("H", "W"))
    parser.add_argument("--size", type=int, default=256, help="timing size (square)")
    parser.add_argument("--rtol", type=float, default=2e-2, help="largest relative error that passes")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--out", default="docs/benchmark")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"torch {torch.__version__}, {name}, autocast {args.dtype}")

    checks = {}
    lines = [f"Agreement at {args.check_size[0]} x {args.check_size[1]} (relative to float32):", "",
             "| block | output | input gradient | pass |", "|---|---|---|---|"]
    for transform in ("fft", "aom", "dct"):
        out_err, grad_err = agreement(transform, list(args.check_size), dtype, device)
        ok = out_err <= args.rtol and grad_err <= args.rtol
        checks[transform] = {"output": out_err, "input_gradient": grad_err, "pass": ok}
        lines.append(f"| SRB_{transform} | {out_err:.2e} | {grad_err:.2e} | {'yes' if ok else 'NO'} |")

    times = timings(args.size, dtype, device, args.warmup, args.repeats)
    ratios = {
        "SRB_F AMP / fp32": times["srb_fft amp"] / times["srb_fft fp32"],
        "3x3 conv AMP / fp32": times["conv3x3 amp"] / times["conv3x3 fp32"],
        "SRB_F / conv fp32": times["srb_fft fp32"] / times["conv3x3 fp32"],
        "SRB_F / conv AMP": times["srb_fft amp"] / times["conv3x3 amp"],
    }
    lines += ["", f"Forward+backward at {args.size}², C=64, batch 2 (ms):", "", "| | ms |", "|---|---|"]
    lines += [f"| {k} | {v:.2f} |" for k, v in times.items()]
    lines += ["", "| ratio | |", "|---|---|"] + [f"| {k} | {v:.2f} |" for k, v in ratios.items()]
    print("\n".join(lines))

    result = {"device": name, "dtype": args.dtype, "check_size": args.check_size, "size": args.size,
              "agreement": checks, "times_ms": times, "ratios": ratios}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "amp_check.json"), "w") as f:
        json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    sys.exit(0 if all(c["pass"] for c in main()["agreement"].values()) else 1)
