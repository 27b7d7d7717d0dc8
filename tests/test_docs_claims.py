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


def test_activation_sparsity_doc_rows_are_what_the_library_computes():
    """The dense and the k-WTA k = 30 rows of docs/activations.md (no training: cheap to recompute)."""
    from sparsity_viz.activations import activation_sparsity, with_kwinners

    doc = (ROOT / "docs/activations.md").read_text()
    model, card = load_sample("lenet300")
    ds = load_dataset(card["dataset"]["name"], seed=card.get("dataset", {}).get("seed", 0))
    for setting, net in (("dense", model), ("k-WTA k = 30 (dense weights)", with_kwinners(model, 30))):
        row = re.search(rf"^\| {re.escape(setting)} \| ([^\n]+) \|$", doc, flags=re.M).group(1).split(" | ")
        report = activation_sparsity(net, ds.x_test, ds.y_test)
        fc1, fc2 = report.layer("fc1"), report.layer("fc2")
        assert row[1:] == [f"{100 * evaluate_dataset(net, ds).accuracy:.1f} %", f"{100 * fc1.zero_fraction:.1f} %",
                           f"{100 * fc2.zero_fraction:.1f} %", f"{100 * report.zero_fraction:.1f} %",
                           f"{len(fc1.dead)} / {len(fc2.dead)}"]
    assert "from 37.5 % to 40.8 %" in doc and f"{100 * activation_sparsity(model, ds.x_test).zero_fraction:.1f}" == "37.5"


def test_readme_sample_model_table_is_the_cards():
    """Every bundled checkpoint has a README row whose parameters and test accuracy are its card's."""
    from sparsity_viz.checkpoints import available_moe_samples, available_samples, load_card

    rows = re.findall(r"^\| `(\w+)` \|.*?\| ([\d,]+) \| ([\d.]+) % \| ≥ ([\d.]+) % \|$",
                      (ROOT / "README.md").read_text(), flags=re.M)
    table = {name: (params, acc, target) for name, params, acc, target in rows}
    names = available_samples() + available_moe_samples()
    assert sorted(table) == sorted(names)
    for name in names:
        card = load_card(name)
        params, acc, target = table[name]
        assert int(params.replace(",", "")) == card["parameters"], name
        assert f"{100 * card['test_accuracy']:.1f}" == acc, name
        assert card["test_accuracy"] >= float(target) / 100, f"{name} misses the README's target"


def test_sensitivity_doc_table_targets_and_accuracies_are_what_the_library_computes():
    """docs/sensitivity.md: the LeNet-300-100 scan table, the guided targets at 90 % and the three accuracies."""
    from sparsity_viz.pruning import prune
    from sparsity_viz.pruning.sensitivity_guided import suggest_targets
    from sparsity_viz.sensitivity import describe_scan, sensitivity_scan

    doc = (ROOT / "docs/sensitivity.md").read_text()
    model, card = load_sample("lenet300")
    ds = load_dataset(card["dataset"]["name"], seed=card.get("dataset", {}).get("seed", 0))
    scan = sensitivity_scan(model, ds, (0.5, 0.7, 0.9, 0.95, 0.99))
    for layer in ("fc1", "fc2", "fc3"):
        rows = scan[scan["layer"] == layer]
        cells = " | ".join(f"{100 * a:.2f}" for a in rows["accuracy"])
        assert f"| {layer} | {int(rows['weights'].iloc[0]):,} | {cells} |" in doc, layer
    assert f"dense test accuracy {100 * scan.attrs['dense_accuracy']:.2f} %" in doc
    assert "fc1 is the least sensitive, fc3 the most" in describe_scan(scan)
    targets = suggest_targets(scan, 0.9)
    assert f"({targets.attrs['target_zeros']:,} of {int(targets['weights'].sum()):,} weights pruned)" in doc
    for r in targets.itertuples():
        assert f"| {r.layer} | {100 * r.level:.2f} % | {r.zeros:,} |" in doc, r.layer
    measured = {name: evaluate_dataset(prune(model, name, 0.9, **kw).model, ds).accuracy
                for name, kw in (("sensitivity_guided", {"scan": scan}), ("magnitude", {}), ("global_magnitude", {}))}
    claim = re.search(r"reaches \*\*([\d.]+) %\*\*, against ([\d.]+) % for\nuniform per-layer magnitude pruning at "
                      r"90 % and ([\d.]+) % for global magnitude", doc).groups()
    assert claim == tuple(f"{100 * measured[n]:.1f}" for n in ("sensitivity_guided", "magnitude", "global_magnitude"))
    zeros = {n: f"{100 * float((~m).float().mean()):.2f} %" for n, m in prune(model, "global_magnitude", 0.9).masks.items()}
    assert f"{zeros['fc1.weight']} / {zeros['fc2.weight']} / {zeros['fc3.weight']} of the weights of fc1" in doc


def _table_rows(doc: str, block: str) -> dict[str, list[str]]:
    """``{first cell: other cells}`` of the markdown table between a block's begin/end markers."""
    body = doc.split(f"<!-- {block}:begin -->")[1].split(f"<!-- {block}:end -->")[0]
    rows = [ln.strip().strip("|").split("|") for ln in body.splitlines() if ln.startswith("| ") and "---" not in ln]
    return {r[0].strip(): [c.strip() for c in r[1:]] for r in rows[1:]}  # rows[0]: the header


def test_activation_prose_is_its_table():
    """docs/activations.md's 'Reading it honestly' numbers are its table's (the 50 % and 90 % rows)."""
    doc = (ROOT / "docs/activations.md").read_text()
    prose = " ".join(doc.split())
    rows = _table_rows(doc, "activations-table")
    hidden = {k: float(v[4].rstrip(" %")) for k, v in rows.items()}  # "all hidden zero"
    dense, half, half_ft = hidden["dense"], hidden["global magnitude 50%"], hidden["global magnitude 50% + 2 epochs fine-tuning"]
    gap = max(abs(half - dense), abs(half_ft - dense))
    claimed = float(re.search(r"to within ([\d.]+) points \(", prose).group(1))
    assert gap <= claimed < gap + 0.1 + 1e-9
    assert f"({dense:.1f} % dense, {half:.1f} % pruned, {half_ft:.1f} % after fine-tuning)" in prose
    ninety, ninety_ft = rows["global magnitude 90%"], rows["global magnitude 90% + 2 epochs fine-tuning"]
    assert (f"At 90 % the share goes from {dense:.1f} % to {ninety[4]} (fc1 {rows['dense'][2].rstrip(' %')} → "
            f"{ninety[2]}), and fine-tuning gives back about 2 points ({ninety_ft[4]})") in prose


def test_lottery_reproduction_prose_is_its_table():
    doc = (ROOT / "docs/reproductions.md").read_text()
    prose = " ".join(doc.split())
    rows = re.findall(r"^\| (\d+) +\| ([\d.]+) % +\| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \| \+([\d.]+) \|$", doc, flags=re.M)
    rows = [r for r in rows if 80 <= float(r[1]) <= 96]
    assert len(rows) == 5
    reinit = [float(r[5]) for r in rows]  # the table's own "ticket − reinit" column
    random_mask = [float(r[2]) - float(r[4]) for r in rows]  # from the shown accuracies
    assert (f"the ticket beats re-initialisation by {min(reinit):.1f}–{max(reinit):.1f} points and the random mask by "
            f"{min(random_mask):.1f}–{max(random_mask):.1f} points") in prose


def test_readme_global_magnitude_profile_is_what_prune_gives():
    from sparsity_viz.pruning import prune

    readme = " ".join((ROOT / "README.md").read_text().split())
    model, card = load_sample("lenet300")
    masks = prune(model, "global_magnitude", 0.9).masks
    kept = [100 * float(masks[f"fc{i}.weight"].float().mean()) for i in (1, 2, 3)]
    assert f"leaves fc1 {kept[0]:.1f} %, fc2 {kept[1]:.1f} % and fc3 {kept[2]:.1f} % of their weights" in readme
    assert kept[0] < kept[1] < kept[2]  # "the big first layer loses most"
    assert "per-layer thresholds keep less of the small layers (8 % / 9 % / 26 %" in readme
    assert "Han report 8 % / 9 % / 26 %" in " ".join((ROOT / "docs/reproductions.md").read_text().split())


def test_sparse_checkpoint_and_csr_bytes_are_what_the_library_writes():
    """docs/backend.md's 'Sparse checkpoint' paragraph and weight bytes, and the README row that quotes them."""
    from sparsity_viz.backend.cli import prune_sample
    from sparsity_viz.backend.formats import CSR
    from sparsity_viz.backend.sparse_checkpoint import save_sparse

    doc = " ".join((ROOT / "docs/backend.md").read_text().split())
    readme = (ROOT / "README.md").read_text()
    def cli_save(name, **kw):  # as `sparse-save` writes it, its metadata included
        model = prune_sample(name, "global_magnitude", 0.9)
        return save_sparse(model, metadata={"model": name, "strategy": "global_magnitude", "sparsity": 0.9}, **kw)

    saved = {name: cli_save(name) for name in ("lenet300", "lenet5")}
    ratio = {n: s.nbytes / s.dense_nbytes for n, s in saved.items()}
    lenet300, lenet5 = saved["lenet300"], saved["lenet5"]
    assert (f"{lenet300.nbytes:,} bytes vs {lenet300.dense_nbytes:,} dense ({ratio['lenet300']:.3f}×); LeNet-5: "
            f"{lenet5.nbytes:,} vs {lenet5.dense_nbytes:,} ({ratio['lenet5']:.3f}×)") in doc
    model = prune_sample("lenet300", "global_magnitude", 0.9)
    fc1 = lenet300.report().set_index("tensor").loc["fc1.weight"]
    without = cli_save("lenet300", keep_zero_signs=False).report().set_index("tensor").loc["fc1.weight"]
    signs = int(fc1["bytes"] - without["bytes"])
    assert (f"fc1 (300×784, {100 * float((model.fc1.weight != 0).float().mean()):.1f} % of its weights left) is stored "
            f"as a {fc1['encoding']} at {fc1['ratio']:.3f}× its dense bytes; {signs:,} bytes of that "
            f"({signs / fc1['dense_bytes']:.3f}×) are a second bitmap") in doc
    csr = sum(CSR.from_dense(m.weight.detach()).nbytes for m in (model.fc1, model.fc2, model.fc3))
    dense = sum(m.weight.numel() * 4 for m in (model.fc1, model.fc2, model.fc3))
    assert f"dense {dense:,}, CSR with int16 columns {csr:,} ({csr / dense:.3f}×)" in doc
    assert f"int16 CSR {csr / dense:.3f}× dense; sparse checkpoint file {ratio['lenet300']:.3f}×" in readme


# README "Measured" rows whose numbers come from a run recorded in a doc (not from a benchmark table that
# tests/test_speed_claims.py reads): the doc each one quotes.
README_ROW_SOURCES = {
    "benchmarks/app_latency.py": "docs/app.md",
    "benchmarks/sweep_speed.py": "docs/reproductions.md",
    "benchmarks/sweep_executors.py": "docs/sweeps.md",
    "benchmarks/reproduce.py han": "docs/reproductions.md",
    "benchmarks/reproduce.py lottery": "docs/reproductions.md",
}


def test_readme_measured_rows_quote_their_docs():
    """Every number (and date) in those rows' result cell is in the doc the row points to."""
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Measured")[1].split("\n\n")[1]
    rows = [[c.strip() for c in ln.strip().strip("|").split("|")] for ln in table.splitlines()[2:]]
    seen = set()
    for what, command, result in rows:
        source = next((doc for cmd, doc in README_ROW_SOURCES.items() if f"`python {cmd}`" in command), None)
        if source is None:
            continue
        seen.add(command)
        text = (ROOT / source).read_text()
        for number in re.findall(r"\d{4}-\d\d-\d\d|\d+(?:[.,]\d+)*", result):
            assert re.search(rf"(?<![\d.,]){re.escape(number)}", text), f"{what}: {number} is not in {source}"
    assert len(seen) == len(README_ROW_SOURCES)


def test_moe_balance_weight_rows_for_moons_are_what_the_script_computes():
    """docs/moe.md's "Effect of the weight" table (the MNIST rows take a minute; moons' three are checked here)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("moe_balance", ROOT / "benchmarks" / "moe_balance.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    doc = (ROOT / "docs" / "moe.md").read_text()
    for row in script.rows("moe_moons"):
        assert row in doc, row


def _lenet300():
    model, card = load_sample("lenet300")
    return model, load_dataset(card["dataset"]["name"], seed=card["dataset"].get("seed", 0))


def test_app_guide_quantization_paragraph_is_what_the_library_computes():
    """docs/app.md's measured quantization paragraph: only its 41.5 % example had a test (an audit)."""
    from sparsity_viz.pruning import prune

    doc = " ".join((ROOT / "docs/app.md").read_text().split())
    model, ds = _lenet300()

    def zeros_and_accuracy(net, method, bits, **kw):
        q = quantize_model(net, method, bits, **kw)
        total = q.report().iloc[-1]
        return f"{100 * total['zeros_after'] / total['weights']:.1f}", f"{100 * evaluate_dataset(q.model, ds).accuracy:.1f}"

    z4, a4 = zeros_and_accuracy(model, "uniform_symmetric", 4)
    zc, ac = zeros_and_accuracy(model, "uniform_symmetric", 4, per_channel=True)
    z2, a2 = zeros_and_accuracy(model, "uniform_symmetric", 2)
    zt, at = zeros_and_accuracy(model, "ternary", 2)
    assert f"LeNet-300-100 (dense {100 * evaluate_dataset(model, ds).accuracy:.1f} % on MNIST-5k)" in doc
    assert f"4 bits turns {z4} % of the weights into exact zeros at {a4} % (per channel: {zc} % at {ac} %)" in doc
    assert f"zeroes {z2} % and falls to {a2} %; ternary zeroes {zt} % at {at} %" in doc
    pruned = prune(model, "magnitude", 0.9).model
    created = quantize_model(pruned, "uniform_symmetric", 4).report().iloc[-1]["zeros_created"]
    assert created == 0 and "to 90 %, 4-bit rounding creates no new zeros" in doc


def test_app_guide_activation_and_regularize_rows_are_what_the_library_computes():
    """The Activations row's k-WTA 85.0 % and the Regularize row's defaults (~87 % zeros at ~94 %): untested
    (the activation numbers were checked only where docs/activations.md repeats them; an audit)."""
    from dataclasses import asdict

    from sparsity_viz.activations import activation_sparsity, with_kwinners
    from sparsity_viz.recipes import l1_recipe
    from sparsity_viz.training import TrainConfig, train

    rows = {line.split(" | ")[0].strip("| "): line for line in (ROOT / "docs/app.md").read_text().splitlines()
            if line.startswith("| ")}
    model, ds = _lenet300()
    dense = 100 * activation_sparsity(model, ds.x_test).zero_fraction
    kwta = 100 * activation_sparsity(with_kwinners(model, 30), ds.x_test).zero_fraction
    assert f"dense `lenet300`: {dense:.1f} % of its hidden activations are zero; k-WTA k = 30 makes it {kwta:.1f} %" \
        in rows["Activations"]
    recipe = asdict(l1_recipe("lenet300"))
    claim = re.search(r"defaults \(λ = ([\d.e-]+), SGD lr ([\d.]+), threshold ([\d.]+), (\d+) epochs\) take "
                      r"LeNet-300-100 to ~(\d+) % exact zeros at ~(\d+) % accuracy", rows["Regularize (L1)"]).groups()
    assert (float(claim[0]), float(claim[1]), float(claim[2]), int(claim[3])) == (
        recipe["strength"], recipe["lr"], recipe["zero_threshold"], recipe["epochs"])
    config = TrainConfig(epochs=recipe["epochs"], lr=recipe["lr"], optimizer="sgd", momentum=0.9, batch_size=64,
                         regularizer="l1", strength=recipe["strength"], zero_threshold=recipe["zero_threshold"])  # the page's
    trained = train(model, ds, config).model
    weights = [p for n, p in trained.named_parameters() if n.endswith("weight")]
    zeros = 100 * sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    assert abs(zeros - int(claim[4])) < 1 and abs(100 * evaluate_dataset(trained, ds).accuracy - int(claim[5])) < 1


def test_moe_doc_expert_pruning_drops_are_what_the_library_computes():
    """docs/moe.md: pruning expert 0 takes moe_moons from 99.5 % to 78.5 % and moe_mnist from 93.2 % to 85.0 %."""
    from sparsity_viz.masks import apply_masks
    from sparsity_viz.moe import expert_masks, expert_report

    doc = " ".join((ROOT / "docs/moe.md").read_text().split())
    measured = []
    for name in ("moe_moons", "moe_mnist"):
        model, card = load_sample(name)
        ds = load_dataset(card["dataset"]["name"], seed=card["dataset"].get("seed", 0))
        before = expert_report(model, ds)["accuracy"]
        after = expert_report(apply_masks(model, expert_masks(model, [0])), ds)["accuracy"]
        measured.append(f"from {100 * before:.1f} % to {100 * after:.1f} %")
    assert f"test accuracy drops {measured[0]}; for `moe_mnist` (top-2, so each input still has its second " \
           f"expert) {measured[1]}." in doc
