"""``pyvene trace --dataset FILE`` and ``pyvene patch --dataset FILE``: dataset jobs from the
command line. Results stream to ``--out-dir`` (JSON + safetensors, see
:mod:`pyvene.analysis.store`); rerunning the same command resumes. Under ``torchrun -m
pyvene ...`` the records are sharded across the processes (gloo on CPU, NCCL on GPUs, one
GPU per process) and rank 0 prints the summary and writes the figure."""

from __future__ import annotations

import argparse
import os
from typing import Any

from .cli_common import CLIError, format_table, load_model, parse_layers
from .errors import PyveneError


def _setup(args: argparse.Namespace) -> tuple[Any, Any]:
    from .analysis import distributed as dist

    if not os.path.isfile(args.dataset):
        raise CLIError(f"--dataset {args.dataset!r} is not a file (one JSON record per line)")
    multi = dist.init_from_env()
    model, tokenizer = load_model(args.model)
    if multi:
        model.to(dist.local_device())
    return model, tokenizer


def trace_command(args: argparse.Namespace) -> int:
    """ROME causal tracing of every fact of ``--dataset``; prints the bucketed AIE tables."""
    from .analysis.dataset_trace import BUCKETS, trace_dataset
    from .analysis.patching import num_layers
    from .analysis.store import RunFolderError
    from .analysis.tracing import TraceInputError

    model, tokenizer = _setup(args)
    out_dir = args.out_dir or "trace-run"
    kinds = tuple(k.strip() for k in args.kinds.split(","))
    try:
        result = trace_dataset(
            model, tokenizer, args.dataset, samples=args.samples, noise=args.noise,
            seed=args.seed, window=args.window, kinds=kinds,
            layers=parse_layers(args.layers, num_layers(model)), out_dir=out_dir,
            filter_correct=not args.no_filter, records_per_batch=args.batch_records,
            progress=not args.no_progress,
        )  # fmt: skip
    except (TraceInputError, RunFolderError) as exc:
        raise CLIError(str(exc)) from None
    if result is None:  # not rank 0
        return 0
    print(
        f"traced {len(result.traces)} records; skipped {result.n_skipped} "
        f"(clean prediction not the target, or bad record); results in {out_dir}/"
    )
    for kind in result.kinds:
        aie, counts = result.bucket_effects(kind)
        rows = [f"{name} ({int(n)})" for name, n in zip(BUCKETS, counts)]
        print(f"\n{kind}: average indirect effect on p(target) per bucket (records) x layer")
        print(format_table(aie.T, rows, result.layers))
    if result.traces:
        out = args.out or os.path.join(out_dir, "figure2.png")
        result.plot(out)
        print(f"\nwrote {out}")
    return 0


def patch_command(args: argparse.Namespace) -> int:
    """Activation patching over every (base, source) pair of ``--dataset``; prints the mean
    grid per component (named positions x layers)."""
    from .analysis.dataset_patch import patch_dataset
    from .analysis.patching import num_layers
    from .analysis.plots import plot_sweep
    from .analysis.store import RunFolderError
    from .analysis.tracing import TraceInputError
    from .families import components_of

    model, tokenizer = _setup(args)
    comps = [c.strip() for c in args.components.split(",")]
    unknown = [c for c in comps if c not in components_of(model)]
    if unknown:
        raise CLIError(f"unknown component(s) {unknown}; choose from {components_of(model)}")
    out_dir = args.out_dir or "patch-run"
    try:
        result = patch_dataset(
            model, args.dataset, tokenizer, components=comps,
            layers=parse_layers(args.layers, num_layers(model)), out_dir=out_dir,
            records_per_batch=args.batch_records, progress=not args.no_progress,
        )  # fmt: skip
    except (PyveneError, TraceInputError, RunFolderError) as exc:
        raise CLIError(str(exc)) from None
    if result is None:
        return 0
    print(f"patched {len(result.indices)} pairs; results in {out_dir}/")
    for comp, grid in result.values.items():
        print(f"\n{comp}: mean over pairs")
        if grid.dim() == 2 and result.heads is not None and grid.shape[1] == len(result.heads):
            print(format_table(grid, [f"head {h}" for h in result.heads], result.layers))
        elif grid.dim() == 2:
            print(format_table(grid, result.names, result.layers))
    if result.indices:
        out = args.out or os.path.join(out_dir, "patch.png")
        plot_sweep(result.as_sweep_result(), out, result.names)
        print(f"\nwrote {out}")
    return 0


def add_dataset_options(parser: argparse.ArgumentParser) -> None:
    """``--dataset``, ``--out-dir`` and ``--batch-records`` (trace and patch)."""
    parser.add_argument("--dataset", metavar="FILE", help="JSON-lines records: run them all")
    parser.add_argument(
        "--out-dir", metavar="DIR", help="with --dataset: the run folder (resumes if present)"
    )
    parser.add_argument(
        "--batch-records", type=int, default=8, metavar="N",
        help="with --dataset: records packed into one batch (default 8)",
    )  # fmt: skip
