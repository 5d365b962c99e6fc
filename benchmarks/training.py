"""Training benchmark: time and peak memory of fitting a listing scorer at growing sizes, and batch scoring
throughput of `ScorerArtifact.score_frame` in process and through Dask.

    python -m benchmarks.training                 # 100k and 1M listings
    python -m benchmarks.training --sizes 100000 1000000 5000000
    python -m benchmarks.training --quick         # 100k only, fewer trees

Each size runs in child processes (one generates and writes the data set, one trains), so every peak RSS is
that child's own `ru_maxrss`, not the parent's. Trees are a fixed number (early stopping off: patience ≥
rounds) so the sizes are comparable.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.common import generate_dataset, machine_description, machine_markdown, reference_config
from benchmarks.report import fmt, publish, table


def _max_rss_mib() -> float:
    # Linux reports ru_maxrss in KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child_generate(out: Path, n_listings: int) -> dict[str, Any]:
    start = time.perf_counter()
    generate_dataset(out, n_listings=n_listings, n_accounts=max(3000, n_listings // 10))
    return {"seconds": time.perf_counter() - start, "peak_rss_mib": _max_rss_mib()}


def child_train(dataset: Path, rounds: int, artifact_dir: Path) -> dict[str, Any]:
    from training.datasets import load_entities
    from training.split import TimeSplitConfig, time_split
    from training.trainer import fit_scorer

    config = reference_config(rounds=rounds)
    t0 = time.perf_counter()
    data = load_entities(dataset, "listing")
    s = config.split
    split = time_split(data, TimeSplitConfig(s.test_days, s.valid_days, s.gap_days))
    t1 = time.perf_counter()
    artifact, _ = fit_scorer(data, split, config)
    t2 = time.perf_counter()
    artifact.save(artifact_dir)
    return {"load_seconds": t1 - t0, "fit_seconds": t2 - t1, "rows": len(data), "train_rows": int(split.train.sum()),
            "trees": artifact.booster.num_trees(), "peak_rss_mib": _max_rss_mib()}


@dataclass(frozen=True)
class _WideNames:
    """What `fit_booster` reads of a feature set: the names (the model's, then the added columns) and the
    categorical ones."""

    feature_names: list[str]
    categorical_features: list[str]


def child_wide(dataset: Path, rounds: int, width: int) -> dict[str, Any]:
    """The issue's width (~50 features) at this size: the listing model's own training matrix widened with
    random numeric columns to `width`, fitted by the product's `fit_booster` with the same configuration.
    It measures LightGBM at that width; the added columns carry no signal."""
    import numpy as np

    from features import FeatureEncoder
    from training.datasets import load_entities
    from training.split import TimeSplitConfig, time_split
    from training.trainer import fit_booster

    config = reference_config(rounds=rounds)
    data = load_entities(dataset, "listing")
    s = config.split
    split = time_split(data, TimeSplitConfig(s.test_days, s.valid_days, s.gap_days))
    fs = data.feature_set
    train, valid = data.subset(split.train), data.subset(split.valid)
    train_cols = train.columns()
    encoder = FeatureEncoder(fs).fit(train_cols)
    rng = np.random.default_rng(0)

    def widen(matrix: np.ndarray) -> np.ndarray:
        return np.hstack([matrix, rng.normal(size=(len(matrix), width - matrix.shape[1]))])

    x_train, x_valid = widen(encoder.transform(train_cols)), widen(encoder.transform(valid.columns()))
    names = _WideNames([*fs.feature_names, *(f"extra_{i}" for i in range(width - len(fs.feature_names)))],
                       list(fs.categorical_features))
    start = time.perf_counter()
    booster, _ = fit_booster(x_train, train.label, x_valid, valid.label, names, config.lightgbm,  # type: ignore[arg-type]
                             desc="wide")
    return {"fit_seconds": time.perf_counter() - start, "train_rows": len(x_train), "width": width,
            "trees": booster.num_trees(), "peak_rss_mib": _max_rss_mib()}


def child_score(dataset: Path, artifact_dir: Path, workers: int) -> dict[str, Any]:
    """score_frame in process (all threads and 1 thread) and score_parquet on a local Dask cluster."""
    import pandas as pd
    from distributed import LocalCluster

    from features.context import join_context
    from jobs.batch import score_parquet
    from models.artifact import ScorerArtifact

    artifact = ScorerArtifact.load(artifact_dir)
    frame = join_context(pd.read_parquet(dataset / "listings.parquet"), "listing",
                         {"account": pd.read_parquet(dataset / "accounts.parquet")})
    out: dict[str, Any] = {"rows": len(frame)}
    for threads in (0, 1):
        start = time.perf_counter()
        artifact.score_frame(frame, num_threads=threads)
        out[f"in_process_threads_{threads}_seconds"] = time.perf_counter() - start
    del frame
    with tempfile.TemporaryDirectory() as tmp, LocalCluster(n_workers=workers, threads_per_worker=1,
                                                            processes=True, dashboard_address=None) as cluster:
        start = time.perf_counter()
        result = score_parquet(artifact, dataset / "listings.parquet", Path(tmp) / "scored",
                               client=cluster.scheduler_address, linked={"account": dataset / "accounts.parquet"},
                               blocksize="16MiB", min_partitions=4 * workers)
        out["dask_seconds"] = time.perf_counter() - start
        out["dask_partitions"] = result.partitions
        start = time.perf_counter()
        score_parquet(artifact, dataset / "listings.parquet", Path(tmp) / "scored-local",
                      linked={"account": dataset / "accounts.parquet"}, blocksize="16MiB", min_partitions=4 * workers)
        out["dask_threads_seconds"] = time.perf_counter() - start
    out["peak_rss_mib"] = _max_rss_mib()
    return out


WIDE_AT = 1_000_000
WIDE_WIDTH = 50


def _listing_feature_names() -> list[str]:
    from features.listing import LISTING_FEATURE_SET

    return list(LISTING_FEATURE_SET.feature_names)


def _run_child(*args: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.training", "--child", *args], capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def run(sizes: list[int], rounds: int, score_size: int | None, workdir: Path, write_readme: bool) -> str:
    info = machine_description()
    rows = []
    t_start = time.perf_counter()
    scoring: dict[str, Any] | None = None
    wide: dict[str, Any] | None = None
    for n in sizes:
        dataset = workdir / f"listings-{n}"
        print(f"[bench] generating {n:,} listings ...", flush=True)
        gen = _run_child("generate", str(dataset), str(n))
        print(f"[bench] training on {n:,} listings ...", flush=True)
        trained = _run_child("train", str(dataset), str(rounds), str(workdir / f"artifact-{n}"))
        print(f"        {trained}", flush=True)
        rows.append([f"{n:,}", f"{trained['train_rows']:,}", str(trained["trees"]), fmt(gen["seconds"], 1),
                     fmt(trained["load_seconds"], 1), fmt(trained["fit_seconds"], 1),
                     fmt(trained["peak_rss_mib"], 0), fmt(gen["peak_rss_mib"], 0)])
        if n == WIDE_AT:
            print(f"[bench] training on {n:,} listings widened to {WIDE_WIDTH} columns ...", flush=True)
            wide = _run_child("wide", str(dataset), str(rounds), str(WIDE_WIDTH))
            print(f"        {wide}", flush=True)
        if n == score_size:
            print(f"[bench] batch scoring {n:,} listings ...", flush=True)
            scoring = _run_child("score", str(dataset), str(workdir / f"artifact-{n}"), str(os.cpu_count() or 1))
            print(f"        {scoring}", flush=True)
    parts = [
        f"### Training ({time.perf_counter() - t_start:.0f} s)",
        machine_markdown(info) + f"\n- load average at end: {' / '.join(f'{v:.2f}' for v in os.getloadavg())}",
        f"`fit_scorer` on the listing model: {rounds} rounds of up to 63 leaves (learning rate 0.005, patience ≥ "
        "rounds, so the artifact keeps the best of all rounds); 'fit' includes features, LightGBM, calibration "
        "and tiers; 'load' is reading Parquet, the seller join and the split. Peak RSS is the child's own.",
        table(["listings", "train rows", "trees kept", "generate s", "load + split s", "fit s", "fit peak RSS MiB",
               "generate peak RSS MiB"], rows),
    ]
    if wide is not None:
        parts.append(
            f"The issue's width at {WIDE_AT:,} listings: the same training matrix ({wide['train_rows']:,} rows) "
            f"widened to {wide['width']} columns with random numeric ones, fitted by `fit_booster` with the same "
            f"configuration ({wide['trees']} trees): **{wide['fit_seconds']:.1f} s**, peak RSS "
            f"{wide['peak_rss_mib']:,.0f} MiB (LightGBM only: the product's feature pipeline has "
            f"{len(_listing_feature_names())} features).")
    if scoring is not None:
        n = scoring["rows"]
        parts += [
            f"Batch scoring of {n:,} listings (`score_frame`; Dask: `jobs.batch.score_parquet`, Parquet in and "
            "out, 16 MiB blocks, at least 4 partitions per worker):",
            table(["path", "seconds", "rows/s"], [
                ["`score_frame` in process, LightGBM all threads", fmt(scoring["in_process_threads_0_seconds"], 1),
                 fmt(n / scoring["in_process_threads_0_seconds"], 0)],
                ["`score_frame` in process, 1 thread", fmt(scoring["in_process_threads_1_seconds"], 1),
                 fmt(n / scoring["in_process_threads_1_seconds"], 0)],
                [f"`score_parquet` on LocalCluster ({os.cpu_count()} workers × 1 thread, processes), incl. I/O",
                 fmt(scoring["dask_seconds"], 1), fmt(n / scoring["dask_seconds"], 0)],
                ["`score_parquet` without a cluster (dask threads), incl. I/O", fmt(scoring["dask_threads_seconds"], 1),
                 fmt(n / scoring["dask_threads_seconds"], 0)],
            ]),
        ]
    body = "\n\n".join(parts)
    return publish("training", body, write_readme)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        kind, a = sys.argv[2], sys.argv[3:]
        if kind == "generate":
            result = child_generate(Path(a[0]), int(a[1]))
        elif kind == "train":
            result = child_train(Path(a[0]), int(a[1]), Path(a[2]))
        elif kind == "wide":
            result = child_wide(Path(a[0]), int(a[1]), int(a[2]))
        else:
            result = child_score(Path(a[0]), Path(a[1]), int(a[2]))
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--rounds", type=int, default=100, help="trees per model (fixed)")
    parser.add_argument("--score-size", type=int, default=None, help="size used for batch scoring (default: largest)")
    parser.add_argument("--quick", action="store_true", help="100k listings, 50 trees")
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--no-readme", action="store_true")
    args = parser.parse_args()
    sizes = [100_000] if args.quick else sorted(args.sizes)
    rounds = 50 if args.quick else args.rounds
    score_size = args.score_size or max(sizes)
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        run(sizes, rounds, score_size, args.workdir, not args.no_readme)
    else:
        with tempfile.TemporaryDirectory(prefix="triage-bench-train-") as tmp:
            run(sizes, rounds, score_size, Path(tmp), not args.no_readme)


if __name__ == "__main__":
    main()
