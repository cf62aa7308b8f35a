"""Run every benchmark (``bench/bench_*.py``) and write ``bench/RESULTS.md``.

Each benchmark module has ``run(workdir: Path) -> str``: it measures on data it makes
in ``workdir`` and returns a Markdown section. Figures are ratios measured in the same
run, since the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
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
    sections = []
    for module_path in modules:
        spec = importlib.util.spec_from_file_location(module_path.stem, module_path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        print(f"running {module_path.stem} ...", flush=True)
        with tempfile.TemporaryDirectory(prefix=module_path.stem) as workdir:
            sections.append(module.run(Path(workdir)))
    header = (f"# Benchmark results\n\nMeasured {datetime.date.today()} on {platform.node() and 'this machine'} "
              f"({platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores), "
              "all figures of a section from the same run.\n")
    text = header + "\n" + "\n\n".join(sections) + "\n"
    args.output.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
