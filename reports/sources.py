"""Build report inputs from a generated data set or from the stores (scoring log + decisions)."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from features import columns_from_frame, feature_set_for
from features.context import account_age_days
from features.graph import SOLO, LinkGraph
from features.inputs import epoch_seconds
from policy.config import TIER_NAMES, CapacityConfig, QueuePolicyConfig
from policy.priority import ExpectedLossPolicy
from policy.ranking import assign_tiers
from policy.simulation import simulate_queue
from reports.outcomes import NO_VIOLATION, VIOLATION
from reports.sample import FeatureSample, category_decoder
from stores.decisions import DecisionStore
from stores.records import TimeWindow, feature_array
from stores.scoring_log import ScoringLogReader
from triage.entities import ENTITIES, AgeRule, check_entity_type

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from models.artifact import ScorerArtifact
    from stores.records import ScoreRecord
    from training.datasets import LabelledEntities

REVIEW_TIERS = TIER_NAMES[:3]
AGE_BAND_EDGES = (7.0, 30.0, 90.0, 365.0)
AGE_BAND_LABELS = ("<7d", "7-30d", "30-90d", "90-365d", ">1y")
UNKNOWN = "unknown"
DERIVED_SEGMENTS = ("account_age_band", "group")
"""Segments every entity type with an account behind it gets besides its raw ones (the registry's)."""


def segment_columns(entity: str) -> tuple[str, ...]:
    """The raw segment columns the registry declares for the entity type, plus the derived ones."""
    spec = ENTITIES.get(entity)
    return (*spec.segments, *(DERIVED_SEGMENTS if spec.age is not None else ()))


def _window_of(times: pd.Series) -> TimeWindow:
    return TimeWindow(times.min().to_pydatetime(), times.max().to_pydatetime() + timedelta(microseconds=1))


def dataset_windows(
    data: LabelledEntities,
    artifact: ScorerArtifact,
    reference_window: TimeWindow | None = None,
    current_window: TimeWindow | None = None,
) -> tuple[np.ndarray, np.ndarray, TimeWindow]:
    """Row masks of the reference and current windows, and the current window.

    Defaults come from the split the artifact was trained with (``metadata["split"]``): reference = the
    training window [train_start, valid_start), current = the test window [cutoff, end]. Without that
    metadata: the first 60 % and the last 25 % of the data's time range.
    """
    times = data.times
    split = artifact.metadata.get("split") or {}
    start, end = times.min(), times.max() + pd.Timedelta(microseconds=1)
    if reference_window is None:
        if "train_start" in split and "valid_start" in split:
            reference_window = TimeWindow(pd.Timestamp(split["train_start"]).to_pydatetime(),
                                          pd.Timestamp(split["valid_start"]).to_pydatetime())
        else:
            reference_window = TimeWindow(start.to_pydatetime(), (start + (end - start) * 0.6).to_pydatetime())
    if current_window is None:
        cutoff = pd.Timestamp(split["cutoff"]) if "cutoff" in split else start + (end - start) * 0.75
        current_window = TimeWindow(cutoff.to_pydatetime(), end.to_pydatetime())
    ref = ((times >= reference_window.start) & (times < reference_window.end)).to_numpy()
    cur = ((times >= current_window.start) & (times < current_window.end)).to_numpy()
    if not ref.any() or not cur.any():
        raise ValueError(f"empty window: {int(ref.sum())} reference rows, {int(cur.sum())} current rows")
    return ref, cur, current_window


def simulated_reviews(
    data: LabelledEntities,
    artifact: ScorerArtifact,
    window: TimeWindow,
    policy: QueuePolicyConfig,
    capacity: CapacityConfig,
    progress: bool = False,
) -> pd.DataFrame:
    """A review frame for a data set window: cases in the review tiers go through the queue simulation
    (expected-loss policy, ``capacity``); a reviewed case's outcome is its observed investigator label."""

    fs = artifact.feature_set
    batch = artifact.score_columns(columns_from_frame(data.frame, fs))
    tier_index = assign_tiers(batch.probability, batch.exposure, policy)
    queued = tier_index < len(REVIEW_TIERS)
    truth = data.truth if data.truth is not None else pd.DataFrame(index=data.frame.index)
    label = data.label.astype(bool)
    exposure_true = truth["exposure_if_violation"].to_numpy() if "exposure_if_violation" in truth else batch.exposure
    arrivals = pd.DataFrame({
        "case_id": np.asarray(batch.ids, dtype=object),
        "entity_type": str(fs.entity),
        "arrived_at": data.times.to_numpy(),
        "probability": batch.probability,
        "exposure": batch.exposure,
        "true_prob": truth["true_prob"].to_numpy() if "true_prob" in truth else batch.probability,
        "true_exposure": exposure_true,
        "is_violation": truth["is_violation"].to_numpy() if "is_violation" in truth else label,
        "loss_if_missed": truth["loss_if_missed"].to_numpy() if "loss_if_missed" in truth
        else label * batch.exposure,
    }).loc[queued]
    arrivals["arrived_at"] = pd.to_datetime(arrivals["arrived_at"], utc=True)
    days = max(1, math.ceil((window.end - window.start).total_seconds() / 86_400))
    result = simulate_queue(arrivals, ExpectedLossPolicy(policy), capacity, policy, window.start, days,
                            progress=progress)
    cases = result.cases
    labels = pd.Series(label, index=np.asarray(batch.ids, dtype=object))
    reviewed = (cases["outcome"] == "reviewed").to_numpy()
    outcome = np.where(labels.reindex(cases["case_id"]).to_numpy(dtype=bool), VIOLATION, NO_VIOLATION)
    return pd.DataFrame({
        "case_id": cases["case_id"].to_numpy(),
        "tier": cases["tier"].to_numpy(),
        "scored_at": cases["arrived_at"].to_numpy(),
        # expired cases were never decided: they stay open, overdue, in the SLA figures
        "decided_at": cases["reviewed_at"].to_numpy(),
        "outcome": [o if r else None for o, r in zip(outcome, reviewed, strict=True)],
    }).assign(scored_at=lambda f: pd.to_datetime(f["scored_at"], utc=True),
              decided_at=lambda f: pd.to_datetime(f["decided_at"], utc=True))


# -- stores ------------------------------------------------------------------------------------------


def _served_records(
    engine: Engine, artifact: ScorerArtifact, window: TimeWindow, model_name: str | None
) -> list[ScoreRecord]:

    records = ScoringLogReader(engine).scores_in_window(
        window, entity_type=check_entity_type(artifact.entity), model_name=model_name, served=True
    )
    # only rows encoded exactly as this artifact encodes (same features and category codes) are comparable
    return [r for r in records if r.feature_names_hash == artifact.schema_hash]


def log_sample(
    engine: Engine, artifact: ScorerArtifact, window: TimeWindow, *, model_name: str | None = None
) -> FeatureSample:
    """Served scores in ``window`` from the scoring log: the logged feature vectors and the served
    probabilities (read together from the same rows, so they stay aligned)."""

    records = _served_records(engine, artifact, window, model_name)
    if not records:
        raise ValueError(f"no served {artifact.entity} scores with this model's feature schema in {window}")
    times = np.array([r.scored_at.replace(tzinfo=None) for r in records], dtype="datetime64[us]")
    return FeatureSample.from_matrix(feature_array(records), artifact,
                                     scores=np.array([r.probability for r in records]), times=times)


def store_reviews(
    engine: Engine, entity: str, window: TimeWindow, *, model_name: str | None = None
) -> pd.DataFrame:
    """A review frame from the stores: decisions in ``window`` with the score their entity had when
    decided, plus entities scored into a review tier in ``window`` without a decision (open cases)."""

    entity_type = check_entity_type(entity)
    rows = []
    decided_entities = set()
    for item in DecisionStore(engine).decisions_with_scores(window, model_name=model_name, served=True):
        d = item.decision
        if d.entity_type != entity_type:
            continue
        decided_entities.add(d.entity_id)
        if item.score is None:
            continue  # never scored: no tier, so no SLA and not the model's precision
        rows.append({"case_id": d.case_id, "entity_id": d.entity_id, "tier": item.score.tier,
                     "scored_at": item.score.scored_at, "decided_at": d.decided_at, "outcome": d.outcome.value,
                     "loss_amount": d.loss_amount})
    latest = ScoringLogReader(engine).latest_scores(entity_type, model_name=model_name, served=True,
                                                     as_of=window.end)
    for entity_id, score in latest.items():
        if entity_id in decided_entities or score.tier not in REVIEW_TIERS or score.scored_at < window.start:
            continue
        rows.append({"case_id": f"open:{entity_id}", "entity_id": entity_id, "tier": score.tier,
                     "scored_at": score.scored_at, "decided_at": pd.NaT, "outcome": None, "loss_amount": 0.0})
    frame = pd.DataFrame(rows, columns=["case_id", "entity_id", "tier", "scored_at", "decided_at", "outcome",
                                        "loss_amount"])
    frame["scored_at"] = pd.to_datetime(frame["scored_at"], utc=True)
    frame["decided_at"] = pd.to_datetime(frame["decided_at"], utc=True)
    return frame


# -- RCA segments -------------------------------------------------------------------------------------


def age_band(days: np.ndarray) -> np.ndarray:
    days = np.asarray(days, dtype=np.float64)
    bands = np.asarray(AGE_BAND_LABELS, dtype=object)[np.searchsorted(AGE_BAND_EDGES, np.nan_to_num(days))]
    return np.where(np.isnan(days), UNKNOWN, bands)


def account_groups(identifiers: pd.DataFrame) -> pd.Series:
    """Account id → group label (``solo`` when linked to nobody): the link graph's own groups
    (`features.graph`), so the report's groups are the queue's groups."""
    if identifiers.empty:
        return pd.Series(dtype=object)
    return LinkGraph.groups_from_identifiers(identifiers).labels_of()


def raw_segments(frame: pd.DataFrame, entity: str, groups: pd.Series | None = None) -> pd.DataFrame:
    """Segment columns from raw records (the data contract's columns), strings with ``unknown`` for missing."""
    out = pd.DataFrame(index=frame.index)
    for column in segment_columns(entity):
        if column in frame.columns:
            out[column] = frame[column].astype(object).where(frame[column].notna(), UNKNOWN).astype(str)
    spec = ENTITIES.get(entity)
    if spec.age is not None and spec.age.born in frame.columns and spec.age.at in frame.columns:
        out["account_age_band"] = age_band(account_age_days(_time_columns(frame, spec.age), entity))
    owner = _account_field(entity)
    if groups is not None and owner is not None and owner in frame.columns:
        out["group"] = frame[owner].astype(str).map(groups).fillna(SOLO).astype(str).to_numpy()
    return out


def _time_columns(frame: pd.DataFrame, age: AgeRule) -> dict[str, np.ndarray]:
    return {name: epoch_seconds(frame[name]) for name in (age.born, age.at)}


def _account_field(entity: str) -> str | None:
    """The field of an entity's records that names the account behind it: its own id for the entity type the
    groups are made of, else the link to that type (a listing's seller)."""
    spec = ENTITIES.get(entity)
    group = next((g for g in ENTITIES if g.members is not None), None)
    if group is None:
        return None
    if entity == group.members:
        return str(feature_set_for(entity).id_field)
    return next((link.by for link in spec.links if link.entity == group.members), None)


def encoded_segments(matrix: np.ndarray, artifact: ScorerArtifact) -> pd.DataFrame:
    """Segment columns recovered from logged feature vectors (what the scoring log keeps): the categorical
    features decoded through the artifact's vocabularies, and the age band from the age feature."""
    names = artifact.encoder.feature_names
    out = pd.DataFrame(index=range(len(matrix)))
    for name, vocab in artifact.encoder.vocabularies.items():
        decode = category_decoder(vocab)
        column = matrix[:, names.index(name)]
        out[name] = [UNKNOWN if np.isnan(v) else decode(v) for v in column]
    age = ENTITIES.get(artifact.entity).age
    if age is not None and age.feature in names:
        out["account_age_band"] = age_band(matrix[:, names.index(age.feature)])
    return out
