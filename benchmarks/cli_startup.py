"""Start-up time of the ``dislab`` command: ``--version`` and ``--help`` as they run now (only
the module of the command being run is imported) against the same with every command module
imported, as before (``build_parser()`` builds all sub-commands, which loads torch, numba,
matplotlib...). Each is a fresh ``python`` process; the two alternate, and the medians and
their ratio are printed.

    .venv/bin/python benchmarks/cli_startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

CASES = {
    "--version": ("from dislab.cli import main; main(['--version'])",
                  "from dislab.cli import build_parser; build_parser().parse_args(['--version'])"),
    "--help": ("from dislab.cli import main; main(['--help'])",
               "from dislab.cli import build_parser; build_parser().parse_args(['--help'])"),
}


def _seconds(code: str) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], stdout=subprocess.DEVNULL, check=False)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for name, (lazy, eager) in CASES.items():
        _seconds(lazy), _seconds(eager)  # warm the file cache
        a, b = [], []
        for _ in range(args.repeats):
            a.append(_seconds(lazy))
            b.append(_seconds(eager))
        la, eb = statistics.median(a), statistics.median(b)
        print(f"dislab {name}: {la:.3f} s now vs {eb:.3f} s with every command imported "
              f"(median of {args.repeats}): {eb / la:.1f}x faster")


if __name__ == "__main__":
    main()
