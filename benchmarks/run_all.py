"""Run every benchmark in this folder, one after another (results in benchmarks/results/).

    python benchmarks/run_all.py [--quick]

``bench_vs_pymgrit.py`` is one of them: it re-runs itself in ``.venv-pymgrit`` (PyMGRIT needs
numpy < 2), or, without that environment, prints how to create it and counts as passed.
Afterwards ``python benchmarks/report.py`` rewrites benchmarks/README.md from the results.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    args = ap.parse_args()
    failed = []
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"== {script.name}", flush=True)
        cmd = [sys.executable, str(script)] + (["--quick"] if args.quick else [])
        if subprocess.run(cmd).returncode != 0:
            failed.append(script.name)
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
