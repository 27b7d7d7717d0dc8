"""Words match numbers: claims the docs make about quantization are recomputed from the library."""

from __future__ import annotations

import re
from pathlib import Path

from sparsity_viz.checkpoints import load_sample
from sparsity_viz.data import load_dataset
from sparsity_viz.quantization import quantize_model
from sparsity_viz.training import evaluate_dataset

ROOT = Path(__file__).resolve().parent.parent


def test_app_guide_quantize_example_is_what_the_library_computes():
    row = next(line for line in (ROOT / "docs/app.md").read_text().splitlines() if line.startswith("| Quantize |"))
    share, delta = re.search(r"at 4 bits: ([\d.]+) % of the weights become exact zeros for ([−-][\d.]+) points", row).groups()
    model, card = load_sample("lenet300")
    ds = load_dataset(card["dataset"]["name"])
    q = quantize_model(model, "uniform_symmetric", 4)
    total = q.report().iloc[-1]
    assert f"{100 * total['zeros_after'] / total['weights']:.1f}" == share
    before = evaluate_dataset(model, ds).accuracy
    after = evaluate_dataset(q.model, ds).accuracy
    assert f"{100 * (after - before):+.1f}".replace("-", "−") == delta.replace("-", "−")


def test_readme_compression_ratios_are_the_reproduction_tables():
    readme = (ROOT / "README.md").read_text()
    doc = (ROOT / "docs/compression.md").read_text()
    claimed = re.search(r"LeNet-300-100 ([\d.]+)× \(paper 40×\), LeNet-5 ([\d.]+)× \(paper 39×\)", readme).groups()
    measured = re.findall(r"^\| (LeNet-300-100|LeNet-5) \|.*?, ([\d.]+)× \|$", doc, flags=re.M)
    assert dict(measured) == {"LeNet-300-100": claimed[0], "LeNet-5": claimed[1]}
