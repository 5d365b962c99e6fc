"""Scale-out on Dask: distributed training matches single-machine quality, and Dask batch scoring equals
in-process `score_frame` exactly. Runs a real `LocalCluster` (2 worker processes, 1 thread each)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from features import columns_from_frame
from features.context import join_context
from models.artifact import ScorerArtifact
from tests.conftest import small_train_config
from training.datasets import load_entities
from training.split import TimeSplitConfig, time_split

pytestmark = pytest.mark.slow

# Distributed LightGBM builds histogram bins from each worker's rows and bags per worker, so its trees differ
# from a single machine's even with the same seed. Measured on this data set: single-machine test ROC-AUC over
# seeds 7, 1, 2, 3 was 0.865-0.873, distributed 0.869 (seed 7) and 0.872 (seed 1). 0.02 is over twice the
# seed-to-seed range, and far below the gap to a broken scorer (features misaligned: ~0.5).
AUC_TOLERANCE = 0.02


@pytest.fixture(scope="module")
def cluster_address() -> Iterator[str]:
    from distributed import LocalCluster

    # worker processes, not threads: LightGBM's network is per process, two workers must not share one
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      memory_limit="2GiB") as cluster:
        yield cluster.scheduler_address


@pytest.fixture(scope="module")
def distributed_artifact(small_dataset: Path, cluster_address: str) -> ScorerArtifact:
    from training.distributed import train_distributed

    return train_distributed(small_dataset, "listing", small_train_config(), cluster_address)


def _test_window_auc(artifact: ScorerArtifact, dataset: Path) -> float:
    data = load_entities(dataset, "listing")
    test = data.subset(time_split(data, TimeSplitConfig()).test)
    return float(roc_auc_score(test.label, artifact.score_frame(test.frame)["probability"]))


def test_distributed_training_matches_single_machine(distributed_artifact: ScorerArtifact,
                                                     small_dataset: Path) -> None:
    from training.trainer import fit_scorer

    data = load_entities(small_dataset, "listing")
    split = time_split(data, TimeSplitConfig())
    single, _ = fit_scorer(data, split, small_train_config())

    # the same split and the same vocabularies as the single-machine fit
    assert distributed_artifact.metadata["split"] == split.describe()
    assert distributed_artifact.encoder.vocabularies.keys() == single.encoder.vocabularies.keys()
    for name, vocabulary in single.encoder.vocabularies.items():
        assert set(distributed_artifact.encoder.vocabularies[name]) == set(vocabulary)
    assert 1 <= distributed_artifact.metadata["best_iteration"] <= small_train_config().lightgbm.max_rounds
    assert distributed_artifact.metadata["trained_with"]["workers"] == 2

    auc_single = _test_window_auc(single, small_dataset)
    auc_distributed = _test_window_auc(distributed_artifact, small_dataset)
    assert auc_distributed > 0.75
    assert abs(auc_distributed - auc_single) <= AUC_TOLERANCE, (auc_distributed, auc_single)


def test_distributed_artifact_round_trips_and_serves_reasons(distributed_artifact: ScorerArtifact,
                                                             tmp_path: Path, small_dataset: Path) -> None:
    loaded = ScorerArtifact.load(distributed_artifact.save(tmp_path / "scorer"))
    frame = load_entities(small_dataset, "listing").frame.tail(50)
    pd.testing.assert_frame_equal(loaded.score_frame(frame), distributed_artifact.score_frame(frame))
    batch = loaded.score_columns(columns_from_frame(frame, loaded.feature_set))
    reasons = loaded.reasons(batch.matrix[[0, 1]], top_k=3)
    assert len(reasons) == 2


def test_batch_scoring_through_dask_equals_in_process(distributed_artifact: ScorerArtifact, small_dataset: Path,
                                                      cluster_address: str, tmp_path: Path) -> None:
    from jobs.batch import score_parquet

    listings = pd.read_parquet(small_dataset / "listings.parquet")
    accounts = pd.read_parquet(small_dataset / "accounts.parquet")
    # several files so the input really is split into partitions
    source = tmp_path / "input"
    source.mkdir()
    for i, chunk in enumerate(np.array_split(np.arange(len(listings)), 4)):
        listings.iloc[chunk].to_parquet(source / f"part-{i}.parquet", index=False)

    result = score_parquet(distributed_artifact, source, tmp_path / "scored", client=cluster_address,
                           linked={"account": small_dataset / "accounts.parquet"})
    assert result.rows == len(listings) and result.partitions >= 4
    # compare by id: the output's file order is the writer's, not a promise of the API
    scored = pd.read_parquet(tmp_path / "scored").sort_values("listing_id").reset_index(drop=True)
    expected = (distributed_artifact.score_frame(join_context(listings, "listing", {"account": accounts}))
                .sort_values("listing_id").reset_index(drop=True))
    pd.testing.assert_frame_equal(scored, expected, check_exact=True, check_dtype=False)


def test_batch_scoring_without_a_cluster(distributed_artifact: ScorerArtifact, small_dataset: Path,
                                         tmp_path: Path) -> None:
    from jobs.batch import score_parquet

    frame = load_entities(small_dataset, "listing").frame.head(3000)
    frame.to_parquet(tmp_path / "with_seller.parquet", index=False)
    result = score_parquet(distributed_artifact, tmp_path / "with_seller.parquet", tmp_path / "out",
                           blocksize=64 * 1024)
    scored = pd.read_parquet(tmp_path / "out").reset_index(drop=True)
    assert result.rows == 3000
    pd.testing.assert_frame_equal(scored, distributed_artifact.score_frame(frame), check_exact=True,
                                  check_dtype=False)


def test_missing_input_is_a_clear_error(distributed_artifact: ScorerArtifact, tmp_path: Path) -> None:
    from jobs.batch import score_parquet

    with pytest.raises(FileNotFoundError, match="does not exist"):
        score_parquet(distributed_artifact, tmp_path / "nope.parquet", tmp_path / "out")
