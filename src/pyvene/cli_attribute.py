"""``pyvene attribute CLEAN CORRUPT --target T [--foil F]``: attribution patching (AtP or AtP*)
of every cell of the chosen components, the top cells verified exactly, and heatmaps."""

from __future__ import annotations

import argparse
from typing import Any

DEFAULT_COMPONENTS = "head_attention_value_output,mlp_output,attention_output"


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register the ``attribute`` subcommand on ``sub`` (the ``pyvene`` subparsers)."""
    a = sub.add_parser(
        "attribute", parents=[common],
        help="attribution patching (AtP / AtP*) of every cell, top cells verified exactly",
        description="Attribution patching: estimate the effect of patching every (component, "
        "layer, position / head) cell from the clean run into the corrupted one with gradients "
        "(AtP, or AtP* with the QK fix and GradDrop), then verify the top cells exactly.",
    )  # fmt: skip
    a.add_argument("clean", help="clean prompt (source of the patched activations)")
    a.add_argument("corrupt", help="corrupted prompt (base run), same number of tokens")
    a.add_argument("--target", required=True, help="token whose probability is the metric")
    a.add_argument("--foil", help="with a foil the metric is logit(target) - logit(foil)")
    a.add_argument("--components", default=DEFAULT_COMPONENTS,
                   help="comma-separated components (default: %(default)s)")  # fmt: skip
    a.add_argument("--method", choices=["atp", "atp*"], default="atp*",
                   help="atp (plain) or atp* (QK fix + GradDrop) (default: %(default)s)")  # fmt: skip
    a.add_argument("--per-position", action="store_true",
                   help="heads and neurons per position (default: summed over positions)")  # fmt: skip
    a.add_argument(
        "--top",
        type=int,
        default=10,
        help="cells to print and verify exactly (default: %(default)s)",
    )
    a.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run ``pyvene attribute``: attribution-patch every cell of the chosen components, verify
    the top cells exactly, print the table and write the heatmaps; returns the exit code."""
    from .analysis.attribution import attribution_patching
    from .analysis.attribution_plots import plot_attribution
    from .analysis.metrics import logit_difference, token_probability
    from .analysis.patching import num_layers
    from .cli_common import CLIError, load_pair, parse_layers
    from .families import components_of

    if args.top < 1:
        raise CLIError("--top must be at least 1")
    model, tokenizer, good, bad, clean, corrupt = load_pair(args)
    comps = [c.strip() for c in args.components.split(",") if c.strip()]
    unknown = [c for c in comps if c not in components_of(model)]
    if unknown:
        raise CLIError(f"unknown component(s) {unknown}; choose from {components_of(model)}")
    metric = logit_difference(good, bad) if bad is not None else token_probability(good)
    name = "logit diff" if bad is not None else "p"
    result = attribution_patching(
        model, corrupt, clean, metric, comps, parse_layers(args.layers, num_layers(model)),
        per_position=True if args.per_position else None, method=args.method,
        verify=args.top, top_k=args.top, progress=not args.no_progress,
    )  # fmt: skip
    result.tokens = tokenizer.convert_ids_to_tokens(corrupt[0].tolist())
    print(f"{name}: clean={result.source_value:.4f} corrupted={result.base_value:.4f}; "
          f"{args.method} estimates in {result.meta['seconds']:.2f} s")  # fmt: skip
    rows = result.top(args.top)
    width = max(len(r["component"]) + len(r["cell"]) + 1 for r in rows)
    print(f"\n{'rank':>4}  {'cell':<{width}}  {'estimate':>9}  {'exact':>9}")
    for i, r in enumerate(rows, 1):
        cell = f"{r['component']} {r['cell']}"
        print(f"{i:>4}  {cell:<{width}}  {r['estimate']:>9.4f}  {r['exact']:>9.4f}")
    print()
    for ver in result.verification.values():
        print(ver)
    out = args.out or "attribution.png"
    plot_attribution(result, out)
    print(f"\nwrote {out}")
    return 0
