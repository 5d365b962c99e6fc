"""Scale-out training on a Dask cluster: the same features, time split, calibration and tiers as
`training.trainer.fit_scorer`, with LightGBM's data-parallel learner (`lightgbm.dask`) over partitions
that never have to fit on one machine.

What runs where:
- workers: reading Parquet, the seller join, the declared features (`columns_from_frame` + the fitted
  `FeatureEncoder`, per partition), category counts, LightGBM's distributed tree learning;
- driver: the split boundaries (two scalars), the category vocabularies (merged counts), and the validation
  window's margins and labels (one window, small by design) for early stopping, Platt calibration and tiers.

Differences from `fit_scorer`, by necessity: `lightgbm.dask` has no early stopping, so all `max_rounds` trees
are grown and the best iteration is chosen afterwards on the validation window by the same rule as
`lightgbm.early_stopping` (every metric, `early_stopping_rounds` patience); and distributed histogram bins
and bagging differ from a single machine's, so trees differ slightly (tests/test_distributed_dask.py bounds
the effect on test ROC-AUC).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dask
import dask.dataframe as dd
import lightgbm as lgb
import numpy as np
import pandas as pd
from distributed import Client
from lightgbm.dask import DaskLGBMClassifier
from sklearn.metrics import average_precision_score, roc_auc_score

from features import FeatureEncoder, FeatureKind, FeatureSet, columns_from_frame, feature_set_for
from features.context import context_columns, join_context
from features.encoder import DEFAULT_MAX_CATEGORIES
from training.config import TrainConfig
from training.datasets import entity_file
from training.trainer import assemble_scorer

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client

    from models.artifact import ScorerArtifact

LABEL = "label"
LABEL_AVAILABLE_AT = "label_available_at"
# which window a row belongs to, as computed per partition
WINDOW = "__window"
TRAIN, VALID, TEST, UNUSED = 0, 1, 2, -1
# the LightGBM metrics `LightGBMConfig.params()` asks for, as sklearn computes them
METRICS = ("average_precision", "auc")


@dataclass(frozen=True)
class SplitBounds:
    """`training.split.time_split`'s boundaries, computed from the time column alone."""

    train_start: pd.Timestamp
    valid_start: pd.Timestamp
    valid_end: pd.Timestamp
    cutoff: pd.Timestamp
    test_end: pd.Timestamp

    @classmethod
    def from_range(cls, start: pd.Timestamp, end: pd.Timestamp, test_days: int, valid_days: int,
                   gap_days: int) -> SplitBounds:
        # same arithmetic as training/split.py: cutoff on a day boundary, gap, then the valid window
        cutoff = (end - timedelta(days=test_days)).floor("D")
        valid_end = cutoff - timedelta(days=gap_days)
        return cls(start, valid_end - timedelta(days=valid_days), valid_end, cutoff, end)

    def window(self, times: pd.Series, label_available_at: pd.Series) -> np.ndarray:
        known = (label_available_at <= self.cutoff).to_numpy()
        out = np.full(len(times), UNUSED, dtype=np.int8)
        out[(times < self.valid_start).to_numpy() & known] = TRAIN
        out[((times >= self.valid_start) & (times < self.valid_end)).to_numpy() & known] = VALID
        out[(times >= self.cutoff).to_numpy()] = TEST
        return out


@contextmanager
def connected(scheduler: str | Client) -> Iterator[Client]:
    """The given Client, or a new one to the scheduler address that is closed afterwards."""

    if isinstance(scheduler, Client):
        yield scheduler
        return
    with Client(scheduler) as client:
        yield client


def read_labelled(dataset_dir: Path, entity: str, blocksize: str | int | None = "128MiB") -> dd.DataFrame:
    """A data set folder (docs/data-contract.md) as one Dask frame of raw fields + `label` +
    `label_available_at`, the distributed counterpart of `training.datasets.load_entities`."""

    fs = feature_set_for(entity)
    id_field = fs.id_field
    frame = dd.read_parquet(entity_file(dataset_dir, entity), blocksize=blocksize)
    # linked tables hold one row per linked entity (a seller): small enough to send to every partition; the
    # same join as load_entities
    linked = {other: pd.read_parquet(entity_file(dataset_dir, other), columns=columns)
              for other, columns in context_columns(entity).items()}
    if linked:
        frame = frame.map_partitions(join_context, entity, linked)
    truth = dd.read_parquet(entity_file(dataset_dir, entity, "truth"), columns=[id_field, LABEL, LABEL_AVAILABLE_AT],
                            blocksize=blocksize)
    return frame.merge(truth, on=id_field, how="left")


def _window_frame(part: pd.DataFrame, fs: FeatureSet, bounds: SplitBounds) -> pd.DataFrame:
    times = pd.to_datetime(part[fs.time_field], utc=True)
    available = pd.to_datetime(part[LABEL_AVAILABLE_AT], utc=True)
    return pd.DataFrame({WINDOW: bounds.window(times, available)}, index=part.index)


def _category_counts(part: pd.DataFrame, fs: FeatureSet, bounds: SplitBounds) -> dict[str, Counter[str]]:
    """Per partition, the train window's category counts (what `FeatureEncoder.fit` counts)."""
    train = part.loc[_window_frame(part, fs, bounds)[WINDOW].to_numpy() == TRAIN]
    columns = columns_from_frame(train, fs)
    return {spec.name: Counter(v for v in spec.compute(columns) if v != "")
            for spec in fs.features if spec.kind is FeatureKind.CATEGORICAL}


def _merge_counts(parts: Iterable[dict[str, Counter[str]]]) -> dict[str, Counter[str]]:
    # merged in partition order, so ties keep first-seen order as a single pass over the file would
    total: dict[str, Counter[str]] = {}
    for part in parts:
        for name, counts in part.items():
            total.setdefault(name, Counter()).update(counts)
    return total


def _features(part: pd.DataFrame, encoder: FeatureEncoder, bounds: SplitBounds) -> pd.DataFrame:
    fs = encoder.feature_set
    matrix = encoder.transform(columns_from_frame(part, fs))
    out = pd.DataFrame(matrix, columns=encoder.feature_names, index=part.index)
    out[LABEL] = part[LABEL].to_numpy(dtype=np.int8)
    out[WINDOW] = _window_frame(part, fs, bounds)[WINDOW].to_numpy()
    out[fs.time_field] = pd.to_datetime(part[fs.time_field], utc=True).to_numpy()
    return out


def best_iteration(margins: np.ndarray, label: np.ndarray, patience: int) -> int:
    """The iteration `lightgbm.early_stopping` would keep, from per-iteration margins (iterations × rows):
    stop at the first iteration where any metric has not improved for `patience` rounds and keep that
    metric's best; without a stop, the first metric's best over all rounds."""

    scorers = {"average_precision": average_precision_score, "auc": roc_auc_score}
    best = dict.fromkeys(METRICS, -np.inf)
    best_iter = dict.fromkeys(METRICS, 0)
    for i in range(len(margins)):
        for metric in METRICS:
            value = float(scorers[metric](label, margins[i]))
            if value > best[metric]:
                best[metric], best_iter[metric] = value, i
            elif i - best_iter[metric] >= patience:
                return best_iter[metric] + 1
    return best_iter[METRICS[0]] + 1


def _staged_margins(booster: Any, matrix: np.ndarray) -> np.ndarray:
    # one pass per tree, accumulated: the margin after each iteration, as the training loop saw it
    n_iter = booster.current_iteration()
    out = np.empty((n_iter, len(matrix)))
    total = np.zeros(len(matrix))
    for i in range(n_iter):
        total = total + booster.predict(matrix, raw_score=True, start_iteration=i, num_iteration=1)
        out[i] = total
    return out


def _check_window(name: str, rows: int, positives: int, config: TrainConfig) -> None:
    if rows == 0 or positives in (0, rows):
        s = config.split
        raise ValueError(
            f"the {name} window has {rows} rows and {positives} positives: the data set is too short or too small "
            f"for test_days={s.test_days}, valid_days={s.valid_days}, gap_days={s.gap_days}"
        )


def train_distributed(
    data: Path | str | dd.DataFrame,
    entity: str,
    config: TrainConfig,
    scheduler: str | Client,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
) -> ScorerArtifact:
    """Fit a scorer on a Dask cluster. `data` is a data set folder or a Dask frame holding the entity's raw
    fields plus `label` and `label_available_at`; `scheduler` a scheduler address or a connected Client.
    Returns the same `ScorerArtifact` as `fit_scorer` (log it with `models.registry.log_scorer`)."""
    with connected(scheduler) as client:
        return _train(client, data, entity, config, max_categories)


def _train(client: Client, data: Path | str | dd.DataFrame, entity: str, config: TrainConfig,
           max_categories: int) -> ScorerArtifact:
    fs = feature_set_for(entity)
    frame = read_labelled(Path(data), entity) if isinstance(data, str | Path) else data
    n_workers = max(1, len(client.scheduler_info(n_workers=-1)["workers"]))
    if frame.npartitions < n_workers:
        # every worker needs a share of the rows for the data-parallel learner to use it
        frame = frame.repartition(npartitions=n_workers)
    frame = frame.persist()

    time = frame[fs.time_field]
    start, end = dask.compute(time.min(), time.max())
    s = config.split
    bounds = SplitBounds.from_range(pd.Timestamp(start), pd.Timestamp(end), s.test_days, s.valid_days, s.gap_days)

    counts = _merge_counts(client.gather(client.compute(
        [dask.delayed(_category_counts)(part, fs, bounds) for part in frame.to_delayed()])))
    encoder = FeatureEncoder(fs, {name: [v for v, _ in counts.get(name, Counter()).most_common(max_categories)]
                                  for name in fs.categorical_features}, _typical_inputs(frame, fs, bounds))

    meta = _features(frame._meta, encoder, bounds)
    features = frame.map_partitions(_features, encoder, bounds, meta=meta).persist()
    names = encoder.feature_names
    train = _non_empty_partitions(features[features[WINDOW] == TRAIN], n_workers)
    valid = features[features[WINDOW] == VALID][[*names, LABEL, fs.time_field]].compute()
    train_rows, train_pos = dask.compute(train[LABEL].count(), train[LABEL].sum())
    _check_window("train", int(train_rows), int(train_pos), config)
    _check_window("valid", len(valid), int(valid[LABEL].sum()), config)

    lgbm = config.lightgbm
    params = lgbm.params()
    params.pop("metric")
    # lightgbm.dask sets each worker's num_threads to its Dask thread count and warns about any other value
    params.pop("num_threads")
    params.update(n_estimators=lgbm.max_rounds)
    threads = min(client.nthreads().values())
    model = DaskLGBMClassifier(client=client, **params)
    model.fit(train[names], train[LABEL], categorical_feature=list(fs.categorical_features))
    booster = model.booster_

    valid = valid.sort_values(fs.time_field, kind="stable")
    x_valid = valid[names].to_numpy(dtype=np.float64)
    y_valid = valid[LABEL].to_numpy(dtype=np.int8)
    keep = best_iteration(_staged_margins(booster, x_valid), y_valid, lgbm.early_stopping_rounds)
    # keep only the trees the early-stopping rule chose, so the artifact is exactly what was validated
    booster = lgb.Booster(model_str=booster.model_to_string(num_iteration=keep))
    margin_valid = np.asarray(booster.predict(x_valid, raw_score=True), dtype=np.float64)
    days_valid = pd.to_datetime(valid[fs.time_field], utc=True).dt.floor("D").to_numpy()
    test_rows = int((features[WINDOW] == TEST).sum().compute())
    # the link-graph columns are not computed on the cluster (listings have none): no snapshot to ship
    return assemble_scorer(
        booster, encoder, margin_valid, y_valid, days_valid, config, graph=None,
        metadata={
            "split": _describe(bounds, int(train_rows), len(valid), test_rows),
            "trained_with": {"engine": "lightgbm.dask", "workers": n_workers, "threads_per_worker": threads,
                             "partitions": int(frame.npartitions)},
        },
    )


def _typical_inputs(frame: dd.DataFrame, fs: FeatureSet, bounds: SplitBounds) -> dict[str, float]:
    """`FeatureEncoder.fit`'s typical exposure inputs over the train window: medians of the known values (Dask's
    approximate quantile, exact up to its t-digest's error on a cluster)."""
    if not fs.exposure_inputs:
        return {}
    window = frame.map_partitions(_window_frame, fs, bounds, meta={WINDOW: np.int8})[WINDOW]
    train = frame[window == TRAIN]
    medians = dask.compute(*(train[name].astype("float64").dropna().quantile(0.5)
                             if name in frame.columns else np.nan for name in fs.exposure_inputs))
    return {name: float(value) for name, value in zip(fs.exposure_inputs, medians, strict=True) if np.isfinite(value)}


def _non_empty_partitions(frame: dd.DataFrame, n_workers: int) -> dd.DataFrame:
    """The train window without empty partitions, in at least `n_workers` pieces: time-ordered files put the
    train window in the early partitions only, and LightGBM fails on a worker whose share is empty."""
    frame = frame.persist()
    lengths = frame.map_partitions(len).compute().tolist()
    keep = [i for i, n in enumerate(lengths) if n > 0]
    frame = frame.partitions[keep]
    if len(keep) < n_workers:
        # splitting a partition cuts it into equal row ranges, so every piece keeps rows
        frame = frame.repartition(npartitions=n_workers).persist()
    return frame


def _describe(bounds: SplitBounds, train_rows: int, valid_rows: int, test_rows: int) -> dict[str, str | int]:
    # the keys of training.split.TimeSplit.describe(), so both artifacts read the same
    return {
        "train_start": bounds.train_start.isoformat(),
        "valid_start": bounds.valid_start.isoformat(),
        "valid_end": bounds.valid_end.isoformat(),
        "cutoff": bounds.cutoff.isoformat(),
        "test_end": bounds.test_end.isoformat(),
        "train_rows": train_rows,
        "valid_rows": valid_rows,
        "test_rows": test_rows,
    }

