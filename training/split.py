"""Time-based split with a label-delay gap, as a risk team would train on the day it trains.

At the cutoff T only labels with `label_available_at <= T` are known. Train and validation use those; the
gap before T (whose labels are mostly immature) is skipped; the test window starts at T and is scored
with the labels that arrived later, as production would see it.

    |---- train ----|-- valid --|-- gap --|T-- test --|
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pandas as pd

from training.datasets import LabelledEntities


@dataclass(frozen=True)
class TimeSplitConfig:
    test_days: int = 21
    valid_days: int = 14
    gap_days: int = 14


@dataclass(frozen=True)
class TimeSplit:
    train_start: pd.Timestamp
    valid_start: pd.Timestamp
    valid_end: pd.Timestamp
    cutoff: pd.Timestamp
    test_end: pd.Timestamp
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray

    def describe(self) -> dict[str, str | int]:
        return {
            "train_start": self.train_start.isoformat(),
            "valid_start": self.valid_start.isoformat(),
            "valid_end": self.valid_end.isoformat(),
            "cutoff": self.cutoff.isoformat(),
            "test_end": self.test_end.isoformat(),
            "train_rows": int(self.train.sum()),
            "valid_rows": int(self.valid.sum()),
            "test_rows": int(self.test.sum()),
        }


def time_split(data: LabelledEntities, config: TimeSplitConfig) -> TimeSplit:
    times = data.times
    end = times.max()
    cutoff = (end - timedelta(days=config.test_days)).floor("D")
    valid_end = cutoff - timedelta(days=config.gap_days)
    valid_start = valid_end - timedelta(days=config.valid_days)
    known = (data.label_available_at <= cutoff).to_numpy()
    train = (times < valid_start).to_numpy() & known
    valid = ((times >= valid_start) & (times < valid_end)).to_numpy() & known
    test = (times >= cutoff).to_numpy()
    for name, mask in (("train", train), ("valid", valid), ("test", test)):
        labels = data.label[mask]
        if mask.sum() == 0 or labels.min() == labels.max():
            raise ValueError(
                f"the {name} window has {int(mask.sum())} rows and {int(labels.sum())} positives: the data set is "
                f"too short or too small for test_days={config.test_days}, valid_days={config.valid_days}, "
                f"gap_days={config.gap_days}"
            )
    return TimeSplit(times.min(), valid_start, valid_end, cutoff, end, train, valid, test)
