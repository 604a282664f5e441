"""The README's figures table is the one generated from benchmarks/results/*.json."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks import readme_figures  # noqa: E402


def test_readme_figures_match_the_result_files():
    text = readme_figures.README.read_text(encoding="utf-8")
    assert readme_figures.rewrite(text) == text, "run: python benchmarks/readme_figures.py"


def test_every_row_names_its_benchmark_script():
    rows = readme_figures.figure_rows()
    assert rows
    for what, figure in rows:
        assert "(bench_" in what and figure
