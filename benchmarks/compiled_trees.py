"""Compiled tree inference, evaluated against what the service runs (not adopted; see the table's verdict).

    pip install lleaves llvmlite==0.44.0     # not a project dependency: only this evaluation needs it
    python -m benchmarks.compiled_trees      # ~3-4 min on 2 cores (most of it is lleaves' compile)

Fits the reference listing scorer (~300 trees of 63 leaves, the serving benchmark's), compiles its booster
with lleaves (LLVM), and measures on the same rows: exactness against `Booster.predict`, one row through the
path the service uses (`ScorerArtifact.predict_margin`: LightGBM's single-row C API) and through lleaves,
1,000-row batches both ways, and the compile time. lleaves' README reports ~10× on its own models; the
question here is what it would save end to end in this service.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import generate_dataset, machine_description, machine_markdown, reference_config, time_calls
from benchmarks.report import fmt, publish, table


def run(workdir: Path, write_readme: bool) -> str:
    try:
        import lleaves
    except ImportError as exc:
        raise SystemExit("lleaves is not installed: pip install lleaves llvmlite==0.44.0") from exc
    from training.datasets import load_entities
    from training.split import TimeSplitConfig, time_split
    from training.trainer import fit_scorer

    info = machine_description()
    dataset = generate_dataset(workdir / "data", n_listings=60_000, n_accounts=6_000)
    config = reference_config(rounds=300)
    data = load_entities(dataset, "listing")
    s = config.split
    artifact, _ = fit_scorer(data, time_split(data, TimeSplitConfig(s.test_days, s.valid_days, s.gap_days)), config)
    matrix = artifact.model_matrix(data.columns())[-10_000:]
    model_file = workdir / "booster.txt"
    artifact.booster.save_model(str(model_file))

    start = time.perf_counter()
    compiled = lleaves.Model(model_file=str(model_file))
    compiled.compile(cache=str(workdir / "booster.so"))
    compile_seconds = time.perf_counter() - start

    reference = np.asarray(artifact.booster.predict(matrix, num_threads=1))
    lleaves_out = np.asarray(compiled.predict(matrix, n_jobs=1))
    max_diff = float(np.max(np.abs(reference - lleaves_out)))

    rows = iter(range(10**12))

    def one() -> np.ndarray:
        i = next(rows) % len(matrix)
        return np.ascontiguousarray(matrix[i:i + 1])

    batch = np.ascontiguousarray(matrix[:1000])
    single_c_api = time_calls(lambda: artifact.predict_margin(one(), num_threads=1), 3000)
    single_booster = time_calls(lambda: artifact.booster.predict(one(), raw_score=True, num_threads=1), 3000)
    single_lleaves = time_calls(lambda: compiled.predict(one(), n_jobs=1), 3000)
    batch_booster = time_calls(lambda: artifact.booster.predict(batch, raw_score=True, num_threads=1), 200, warmup=5)
    batch_lleaves = time_calls(lambda: compiled.predict(batch, n_jobs=1), 200, warmup=5)
    trees = artifact.booster.num_trees()

    def us(p: Any) -> str:
        return f"{fmt(p.p50_ms * 1000, 1)} / {fmt(p.p99_ms * 1000, 1)}"

    body = "\n\n".join([
        "### Compiled tree inference (lleaves)",
        machine_markdown(info) + f"\n- lleaves {importlib.metadata.version('lleaves')}, llvmlite "
        f"{importlib.metadata.version('llvmlite')}",
        f"Reference listing scorer: {trees} trees of up to 63 leaves, {matrix.shape[1]} features; 10,000 rows "
        f"from the later window. lleaves compile: **{compile_seconds:.0f} s**; largest difference from "
        f"`Booster.predict` over the 10,000 rows: **{max_diff:.1e}**.",
        table(["prediction, 1 thread", "p50 / p99 µs"], [
            ["1 row, `ScorerArtifact.predict_margin` (LightGBM single-row C API, shipped)", us(single_c_api)],
            ["1 row, `Booster.predict`", us(single_booster)],
            ["1 row, lleaves", us(single_lleaves)],
            ["1,000 rows, `Booster.predict` (shipped for batches)", us(batch_booster)],
            ["1,000 rows, lleaves", us(batch_lleaves)],
        ]),
    ])
    return publish("compiled", body, write_readme)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="triage-bench-compiled-") as tmp:
        run(Path(tmp), not args.no_readme)


if __name__ == "__main__":
    main()
