"""`make gpu-check`: the CUDA tests and the GPU benchmarks in one command, tables to a file.

Meant for a machine lent with a GPU for a few minutes: its own torch with CUDA and no package
registry (pydantic travels as wheels). Each section is written to ``--out`` as soon as it
ends, so a section that fails or a run cut short still leaves the ones before it; sections
that would start after ``--budget`` seconds are skipped and say so.

Run: ``python -m benchmarks.gpu_check [--out FILE] [--budget SECONDS] [--quick] [--only WORD ...]``
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks import fused_layers, packed_training, population_scaling
from benchmarks.optimizer_step import bandwidth_row

CUDA_TESTS = (
    "tests/optimizers/test_cuda.py",
    "tests/workers/test_cuda.py",
    "tests/workers/test_train.py",
)


def device_section(device: torch.device) -> str:
    """What ran: GPU (or CPU), driver, torch and CUDA versions."""
    if device.type != "cuda":
        return f"device: {device} ({platform.processor() or platform.machine()}), no CUDA"
    props = torch.cuda.get_device_properties(device)
    smi = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return (
        f"device: {props.name}, {props.total_memory / 2**30:.0f} GiB, "
        f"{props.multi_processor_count} SMs; nvidia-smi: {smi or 'n/a'}\n"
        f"torch {torch.__version__}, CUDA {torch.version.cuda}, Python {platform.python_version()}"
        f"; TF32 matmul {torch.backends.cuda.matmul.allow_tf32}, "
        f"cuDNN TF32 {torch.backends.cudnn.allow_tf32}"
    )


def tests_section(device: torch.device) -> str:
    """The tests marked ``cuda`` (they skip, with the reason, without a GPU): pytest's summary."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-m",
            "cuda",
            "-q",
            "-rs",
            "-p",
            "no:cacheprovider",
            "--durations=5",
            *CUDA_TESTS,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-40:])
    return f"pytest exit code {result.returncode}\n\n```\n{tail}\n```"


def bandwidth_section(device: torch.device) -> str:
    """An Adam population step over 50M float32 parameters against the memory floor."""
    rows = [
        "| path | step (ms) | floor (ms) | x floor | copy_ bandwidth (GB/s) |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for label, compile in (("eager", False), ("compiled", True)):
        bandwidth, floor_s, step_s = bandwidth_row(50_000_000, device, 20, compile=compile)
        rows.append(
            f"| {label} | {step_s * 1e3:.2f} | {floor_s * 1e3:.2f} | {step_s / floor_s:.2f} "
            f"| {bandwidth / 1e9:,.0f} |"
        )
    return "\n".join(rows)


def main() -> None:
    """Run every section, appending each to ``--out`` as it ends."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("test-artifacts/gpu-check.md"))
    parser.add_argument("--budget", type=float, default=480.0, help="seconds for all sections")
    parser.add_argument("--quick", action="store_true", help="small sizes (to try it on a CPU)")
    parser.add_argument(
        "--only", nargs="*", default=[], help="run the sections whose titles contain these words"
    )
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = str(device)
    sections: list[tuple[str, Callable[[], str]]] = [
        ("Device", lambda: device_section(device)),
        ("CUDA tests (pytest -m cuda)", lambda: tests_section(device)),
        (  # first: issue 23's GPU targets (CNN >= 15x, transformer >= 8x one at a time)
            "Packed training, fused and vmapped, vs one trial at a time (packed_training.py)",
            lambda: packed_training.throughput_table(name, quick=args.quick),
        ),
        (
            "Each fused layer vs vmap and vs K alone (fused_layers.py)",
            lambda: fused_layers.table(
                name, members=[4, 8] if args.quick else [32, 128], repeats=15
            ),
        ),
        (
            "Population step vs K torch.optim optimizers (population_scaling.py)",
            lambda: population_scaling.run(device, quick=args.quick),
        ),
        (
            "Memory per pack member vs the estimate (packed_training.py)",
            lambda: (
                packed_training.memory_table(name, quick=args.quick)
                if device.type == "cuda"
                else "skipped: needs CUDA"
            ),
        ),
        (
            "Reference-MLP pack as K grows (packed_training.py)",
            lambda: packed_training.scaling_table(name, quick=args.quick),
        ),
        (
            "Adam population step at 50M parameters vs the memory floor (optimizer_step.py)",
            lambda: bandwidth_section(device),
        ),
    ]
    if args.only:
        chosen = [(t, f) for t, f in sections if any(w.lower() in t.lower() for w in args.only)]
        sections = sections[:1] + [s for s in chosen if s != sections[0]]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(f"# gpu-check, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    start = time.perf_counter()
    for title, section in sections:
        began = time.perf_counter()
        if began - start > args.budget:
            body = f"skipped: the {args.budget:.0f} s budget was spent"
        else:
            try:
                body = section()
            except Exception:
                body = f"failed:\n\n```\n{traceback.format_exc()[-3000:]}\n```"
        text = f"\n## {title}\n\n{body}\n\n({time.perf_counter() - began:.1f} s)\n"
        print(text, flush=True)
        with args.out.open("a") as out:
            out.write(text)


if __name__ == "__main__":
    main()
