"""Build report inputs from a generated data set or from the stores (scoring log + decisions)."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from features import Entity, columns_from_frame
from policy.config import TIER_NAMES, CapacityConfig, QueuePolicyConfig
from reports.outcomes import NO_VIOLATION, VIOLATION
from reports.sample import FeatureSample, category_decoder
from stores.records import EntityType, TimeWindow

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from models.artifact import ScorerArtifact
    from stores.records import ScoreRecord
    from training.datasets import LabelledEntities

REVIEW_TIERS = TIER_NAMES[:3]
AGE_BAND_EDGES = (7.0, 30.0, 90.0, 365.0)
AGE_BAND_LABELS = ("<7d", "7-30d", "30-90d", "90-365d", ">1y")
UNKNOWN = "unknown"
# Raw segment columns per entity, as the data contract names them (plus the derived age band and group).
SEGMENT_COLUMNS: dict[str, tuple[str, ...]] = {
    "listing": ("category", "shipping_origin", "seller_country", "seller_verification", "brand",
                "account_age_band", "group"),
    "account": ("category_focus", "country", "verification", "account_type", "account_age_band", "group"),
}
AGE_FEATURE = {"listing": "seller_age_days", "account": "account_age_days"}


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
    from policy.priority import ExpectedLossPolicy
    from policy.ranking import assign_tiers
    from policy.simulation import simulate_queue

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
    from stores.scoring_log import ScoringLogReader

    records = ScoringLogReader(engine).scores_in_window(
        window, entity_type=EntityType(artifact.entity), model_name=model_name, served=True
    )
    # only rows encoded exactly as this artifact encodes (same features and category codes) are comparable
    return [r for r in records if r.feature_names_hash == artifact.schema_hash]


def log_sample(
    engine: Engine, artifact: ScorerArtifact, window: TimeWindow, *, model_name: str | None = None
) -> FeatureSample:
    """Served scores in ``window`` from the scoring log: the logged feature vectors and the served
    probabilities (read together from the same rows, so they stay aligned)."""
    from stores.records import feature_array

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
    from stores.decisions import DecisionStore
    from stores.scoring_log import ScoringLogReader

    entity_type = EntityType(entity)
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
    """Account id → group label: accounts linked by any shared identifier form a group (``G`` + the
    smallest member id); unlinked accounts are ``solo``. A cheap stand-in for the graph features' groups."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if identifiers.empty:
        return pd.Series(dtype=object)
    acc_codes, accounts = pd.factorize(identifiers["account_id"])
    id_codes, _ = pd.factorize(identifiers["identifier_type"] + ":" + identifiers["identifier"])
    n_acc = len(accounts)
    # bipartite graph accounts ↔ identifiers; components give the groups
    edges = coo_matrix((np.ones(len(acc_codes)), (acc_codes, id_codes + n_acc)),
                       shape=(n_acc + id_codes.max() + 1,) * 2)
    _, component = connected_components(edges, directed=False)
    comp = pd.Series(component[:n_acc], index=accounts)
    size = comp.map(comp.value_counts())
    first = pd.Series(accounts, index=accounts).groupby(comp.to_numpy()).transform("min")
    return pd.Series(np.where(size.to_numpy() >= 2, "G:" + first.to_numpy().astype(str), "solo"), index=accounts)


def raw_segments(frame: pd.DataFrame, entity: str, groups: pd.Series | None = None) -> pd.DataFrame:
    """Segment columns from raw records (the data contract's columns), strings with ``unknown`` for missing."""
    out = pd.DataFrame(index=frame.index)
    for column in SEGMENT_COLUMNS[entity]:
        if column in frame.columns:
            out[column] = frame[column].astype(object).where(frame[column].notna(), UNKNOWN).astype(str)
    owner, born, at = (("seller_id", "seller_created_at", "created_at") if entity == Entity.LISTING.value
                       else ("account_id", "created_at", "observed_at"))
    if born in frame.columns and at in frame.columns:
        days = (pd.to_datetime(frame[at], utc=True) - pd.to_datetime(frame[born], utc=True)).dt.total_seconds()
        out["account_age_band"] = age_band((days / 86_400).to_numpy())
    if groups is not None and owner in frame.columns:
        out["group"] = frame[owner].map(groups).fillna("solo").astype(str).to_numpy()
    return out


def encoded_segments(matrix: np.ndarray, artifact: ScorerArtifact) -> pd.DataFrame:
    """Segment columns recovered from logged feature vectors (what the scoring log keeps): the categorical
    features decoded through the artifact's vocabularies, and the age band from the age feature."""
    names = artifact.encoder.feature_names
    out = pd.DataFrame(index=range(len(matrix)))
    for name, vocab in artifact.encoder.vocabularies.items():
        decode = category_decoder(vocab)
        column = matrix[:, names.index(name)]
        out[name] = [UNKNOWN if np.isnan(v) else decode(v) for v in column]
    age = AGE_FEATURE.get(artifact.entity)
    if age in names:
        out["account_age_band"] = age_band(matrix[:, names.index(age)])
    return out
