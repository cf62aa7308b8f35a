"""Run every benchmark (``bench/bench_*.py``) and write ``bench/RESULTS.md``.

Each benchmark module has ``run(workdir: Path) -> str``: it measures on data it makes
in ``workdir`` and returns a Markdown section. Figures are ratios measured in the same
run, since the machines are shared and noisy. Each section is kept in
``bench/results/<name>.md`` and ``RESULTS.md`` is rebuilt from all of them, so running one
benchmark updates its section and keeps the others.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def main() -> None:
    """Run the selected benchmarks (all by default) and write the results file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="benchmark names (bench_<name>.py); default: all")
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args()
    modules = sorted(HERE.glob("bench_*.py"))
    if args.names:
        modules = [m for m in modules if m.stem.removeprefix("bench_") in args.names]
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    for module_path in modules:
        spec = importlib.util.spec_from_file_location(module_path.stem, module_path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print(f"running {module_path.stem} ...", flush=True)
        with tempfile.TemporaryDirectory(prefix=module_path.stem) as workdir:
            section = module.run(Path(workdir))
        stamp = f"\n_Measured {datetime.date.today()} ({platform.machine()}, {os.cpu_count()} cores)._\n"
        (results / f"{module_path.stem.removeprefix('bench_')}.md").write_text(section.rstrip() + "\n" + stamp,
                                                                                encoding="utf-8")
    sections = [path.read_text(encoding="utf-8").rstrip() for path in sorted(results.glob("*.md"))]
    text = ("# Benchmark results\n\nEach section comes from one run of its benchmark (`make bench`, or "
            "`.venv/bin/python bench/run.py NAME`); all figures of a section are from the same run.\n\n"
            + "\n\n".join(sections) + "\n")
    args.output.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
