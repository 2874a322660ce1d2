"""Start-up cost of ``import pyvene`` and ``pyvene --help``, against ``import torch``.

Each statement runs in a fresh interpreter (``python -X importtime`` is not used: it slows the
import itself). The rounds alternate the statements so that load from other processes hits all
sides alike; the figure per statement is the best of N rounds (the least disturbed run).
Reported: seconds and the difference / ratio to ``import torch``, which pyvene cannot avoid.
``import pyvene`` itself is lazy, so the row that matters is "pyvene core (first use)": the
import plus the first use of ``pv.IntervenableModel`` (torch and the whole core, no
transformers). ``pyvene --help`` runs the installed command's module.

Run: ``.venv/bin/python benchmarks/import_time.py [--repeats N]``.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time

STATEMENTS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "import torch": [sys.executable, "-c", "import torch"],
    "import pyvene": [sys.executable, "-c", "import pyvene"],
    "pyvene core (first use)": [
        sys.executable,
        "-c",
        "import pyvene as pv; pv.IntervenableModel; pv.VanillaIntervention",
    ],
    "import torch, transformers": [sys.executable, "-c", "import torch, transformers"],
    "pyvene --help": [sys.executable, "-m", "pyvene.cli", "--help"],
}


def run_once(argv: list[str]) -> float:
    """Wall seconds of one fresh interpreter running ``argv`` (output discarded)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    start = time.perf_counter()
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="rounds (default: %(default)s)")
    args = parser.parse_args()
    best = {name: float("inf") for name in STATEMENTS}
    for argv in STATEMENTS.values():  # warm the file cache once
        run_once(argv)
    for _ in range(args.repeats):
        for name, argv in STATEMENTS.items():
            best[name] = min(best[name], run_once(argv))
    torch_s = best["import torch"]
    print(
        f"machine: {platform.machine()} {os.cpu_count()} cores, python "
        f"{platform.python_version()}, best of {args.repeats} alternating rounds"
    )
    print(f"{'statement':<28}{'seconds':>9}{'- torch':>10}{'/ torch':>9}")
    for name, seconds in best.items():
        print(f"{name:<28}{seconds:9.3f}{seconds - torch_s:+10.3f}{seconds / torch_s:9.2f}")


if __name__ == "__main__":
    main()
