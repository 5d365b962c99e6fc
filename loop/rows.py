"""Decided cases and base data as model rows, for retraining and comparing: pure steps, no I/O.

Category codes. A logged vector holds category *codes* of the encoder of the model version that scored it
(usually the champion; its `schema_hash` names the vocabulary). Codes of two vocabularies must never be mixed,
so every logged vector is decoded with its own version's encoder back to readable values, and every row (logged
and base) is then encoded once with the challenger's encoder. That encoder keeps the champion's vocabulary
unchanged (same codes for known categories) and appends categories first seen in the training rows, up to the
encoder's cap, so a new category (drift) gets a code instead of being "missing". A value that was unknown to
the scoring model was logged as missing; that information is gone, and it stays missing.

Rows and windows (see `assign_roles`): the recent window (the last days of final decisions) is held out and
both models are scored on it; older decisions train, their last `split.valid_days` validate; a logged entity
also in the base data's test window is held out; base rows whose entity was decided are replaced by the
decision (the reviewer's label is the fresher one).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from features import FeatureEncoder, FeatureKind, FeatureSet
from features.exposure import exposure_of
from loop.labels import DecidedCases, case_loss
from stores.records import exposure_estimates
from training.datasets import LabelledEntities
from training.split import TimeSplit


class SchemaMismatchError(ValueError):
    """Logged feature vectors cannot be read with the current feature definitions."""


FACT_COLUMNS = ("entity_id", "time", "label", "loss", "exposure", "source", "role", "score_id", "decided_at")


@dataclass(frozen=True)
class CaseRows:
    """Labelled rows ready for a model: readable feature values plus one row of facts each.

    facts: entity_id, time (when scored, UTC), label, loss, exposure, source (`log`/`base`), role
    (`recent`/`train`/`valid`/`test`/excluded reasons), score_id and decided_at (logged rows only).
    """

    values: dict[str, np.ndarray]
    facts: pd.DataFrame

    def __len__(self) -> int:
        return len(self.facts)

    def subset(self, mask: np.ndarray) -> CaseRows:
        return CaseRows({k: v[mask] for k, v in self.values.items()}, self.facts.loc[mask].reset_index(drop=True))

    def role(self, *roles: str) -> CaseRows:
        return self.subset(self.facts["role"].isin(roles).to_numpy())

    @property
    def label(self) -> np.ndarray:
        return self.facts["label"].to_numpy(dtype=np.int8)

    @property
    def days(self) -> np.ndarray:
        return pd.to_datetime(self.facts["time"], utc=True).dt.floor("D").to_numpy()

    @classmethod
    def concat(cls, parts: Sequence[CaseRows], feature_set: FeatureSet) -> CaseRows:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty(feature_set)
        values = {name: np.concatenate([p.values[name] for p in parts]) for name in feature_set.feature_names}
        return cls(values, pd.concat([p.facts for p in parts], ignore_index=True))

    @classmethod
    def empty(cls, feature_set: FeatureSet) -> CaseRows:
        values = {s.name: np.empty(0, dtype=object if s.kind is FeatureKind.CATEGORICAL else np.float64)
                  for s in feature_set.features}
        return cls(values, pd.DataFrame({c: [] for c in FACT_COLUMNS}))


def logged_rows(
    decided: DecidedCases, feature_set: FeatureSet, model_name: str,
    encoder_for_version: Callable[[str], FeatureEncoder],
) -> CaseRows:
    """Final decisions, each with its entity's served score at or before the decision (point in time), as
    readable feature values decoded with the encoder of the model version that produced each score.

    Refuses (`SchemaMismatchError`) when a logged vector does not follow the current feature definitions or
    its version's encoding: such rows cannot be combined with anything encoded today.
    """
    by_version: dict[str, list[int]] = {}
    for i, case in enumerate(decided.cases):
        by_version.setdefault(case.score.model_version, []).append(i)
    n = len(decided.cases)
    values: dict[str, np.ndarray] = {
        s.name: np.empty(n, dtype=object if s.kind is FeatureKind.CATEGORICAL else np.float64)
        for s in feature_set.features
    }
    for version, idx in sorted(by_version.items()):
        try:
            encoder = encoder_for_version(version)
        except (LookupError, ValueError) as exc:
            raise SchemaMismatchError(
                f"{len(idx)} decided cases were scored by {model_name} version {version}, whose encoding cannot be "
                f"loaded to decode them ({exc}); retrain from the base data only (`triage train`)"
            ) from exc
        _check_schema(encoder, feature_set, [decided.cases[i].score for i in idx], model_name, version)
        matrix = np.array([decided.cases[i].score.feature_vector for i in idx], dtype=np.float64)
        for name, column in encoder.decode(matrix, missing="").items():
            values[name][idx] = column
    exposure = exposure_estimates([c.score for c in decided.cases])
    label = np.array([c.label for c in decided.cases], dtype=np.int8)
    facts = pd.DataFrame({
        "entity_id": [c.entity_id for c in decided.cases],
        "time": pd.to_datetime([c.score.scored_at for c in decided.cases], utc=True),
        "label": label,
        "loss": case_loss(label, np.array([c.loss_amount for c in decided.cases], dtype=np.float64), exposure),
        "exposure": exposure,
        "source": "log",
        "role": "",
        "score_id": [c.score.id for c in decided.cases],
        "decided_at": pd.to_datetime([c.decided_at for c in decided.cases], utc=True),
    })
    return CaseRows(values, facts)


def _check_schema(encoder: FeatureEncoder, feature_set: FeatureSet, scores: Sequence[Any], model_name: str,
                  version: str) -> None:
    if encoder.feature_names != feature_set.feature_names:
        raise SchemaMismatchError(
            f"{model_name} version {version} was trained on features {encoder.feature_names}, but this code "
            f"declares {feature_set.feature_names}: its {len(scores)} logged vectors cannot be combined with data "
            "encoded today; retrain from the base data only (`triage train`)"
        )
    expected = encoder.schema_hash()
    foreign = Counter(s.feature_names_hash for s in scores if s.feature_names_hash != expected)
    lengths = {len(s.feature_vector) for s in scores}
    if foreign or lengths - {len(feature_set.features)}:
        raise SchemaMismatchError(
            f"logged vectors of {model_name} version {version} do not follow its feature schema {expected!r} "
            f"(found {dict(foreign)}, vector lengths {sorted(lengths)}, expected {len(feature_set.features)}): "
            "their category codes cannot be decoded; retrain from the base data only (`triage train`)"
        )


def base_cases(data: LabelledEntities, split: TimeSplit, typical: Mapping[str, float] | None = None) -> CaseRows:
    """The base data set as cases, with its time split as roles (`train`/`valid`/`test`, the rest `gap`);
    `typical`: the champion's typical exposure inputs, so base rows carry the exposure serving would give them."""
    fs = data.feature_set
    columns = data.columns()
    exposure = exposure_of(fs, columns, typical or {})
    label = data.label.astype(np.int8)
    if data.truth is not None and "loss_if_missed" in data.truth:
        loss = data.truth["loss_if_missed"].to_numpy(dtype=np.float64)
    else:
        loss = label * exposure
    role = np.select([split.train, split.valid, split.test], ["train", "valid", "test"], default="gap")
    facts = pd.DataFrame({
        "entity_id": data.frame[fs.id_field].astype(str).to_numpy(), "time": data.times.reset_index(drop=True),
        "label": label, "loss": loss, "exposure": exposure, "source": "base", "role": role, "score_id": "",
        "decided_at": pd.Series(pd.NaT, index=range(len(label)), dtype="datetime64[us, UTC]"),
    })
    return CaseRows(FeatureEncoder(fs).feature_values(columns), facts)


def assign_roles(logged: CaseRows, base: CaseRows | None, recent_start: datetime, valid_days: int) -> None:
    """Give every row its role (in place, see the module docstring). Excluded rows get a reason as role."""
    decided_at = pd.to_datetime(logged.facts["decided_at"], utc=True)
    valid_start = recent_start - timedelta(days=valid_days)
    base_test_ids = set() if base is None else set(base.facts.loc[base.facts["role"] == "test", "entity_id"])
    logged.facts["role"] = np.select(
        [(decided_at >= recent_start).to_numpy(), logged.facts["entity_id"].isin(base_test_ids).to_numpy(),
         (decided_at >= valid_start).to_numpy()],
        ["recent", "held_out_in_base_test", "valid"], default="train",
    )
    if base is not None:
        decided_ids = set(logged.facts["entity_id"])
        replaced = base.facts["role"].isin(["train", "valid"]) & base.facts["entity_id"].isin(decided_ids)
        base.facts.loc[replaced, "role"] = "replaced_by_decision"
