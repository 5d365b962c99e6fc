"""Open cases and the investigator queue, built from the scoring log and the decisions store.

A scored entity in tiers P0–P2 is an open case from its first such score until a reviewer decides it.
Queued cases are re-scored with the current champion from their logged feature vector (the vector as it
was when scored), so a new model re-orders the queue instead of being frozen at enqueue time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from models.artifact import ScorerArtifact
from models.registry import LoadedScorer
from policy import ExpectedLossPolicy, RankedQueue
from serving.schemas import Case, CaseDetail, FeatureValue, Member, Reason
from serving.scorers import ScorerSet
from serving.scoring import QUEUED_TIERS
from stores.decisions import DecisionStore
from stores.records import TimeWindow, exposure_estimates
from stores.scoring_log import ScoringLogReader
from triage.entities import ENTITIES


@dataclass(frozen=True)
class QueueFilter:
    risk_type: str | None = None
    tier: str | None = None
    limit: int = 100


def likely_risk_type(artifact: ScorerArtifact, reasons: Sequence[Reason]) -> str | None:
    for reason in reasons:
        hint = artifact.feature_set.by_name[reason.feature].risk_type
        if hint is not None and reason.contribution > 0:
            return hint
    return None


def to_reasons(scorer: LoadedScorer, matrix: np.ndarray, top_k: int | None) -> list[list[Reason]]:
    return [[Reason(**r.__dict__) for r in row] for row in scorer.reasons(matrix, top_k=top_k)]


def open_case_frame(
    reader: ScoringLogReader, decisions: DecisionStore, scorers: ScorerSet, now: datetime, window_days: int
) -> pd.DataFrame:
    """One row per open case: first queue-worthy score time, latest logged vector, current champion score."""
    window = TimeWindow(now - timedelta(days=window_days), now + timedelta(seconds=1))
    records = [r for r in reader.scores_in_window(window, served=True) if r.tier in QUEUED_TIERS]
    if not records:
        return pd.DataFrame()
    frame = pd.DataFrame(
        {
            "entity_type": [str(r.entity_type) for r in records],
            "entity_id": [r.entity_id for r in records],
            "scored_at": [r.scored_at for r in records],
            "record": records,
        }
    ).sort_values("scored_at", kind="stable")
    grouped = frame.groupby(["entity_type", "entity_id"], sort=False)
    cases = grouped.agg(enqueued_at=("scored_at", "first"), record=("record", "last")).reset_index()
    decided = {
        (str(d.entity_type), d.entity_id): d.decided_at for d in decisions.decisions_in_window(window)
    }
    cases = _undecided(cases, decided)
    parts = []
    for entity, rows in cases.groupby("entity_type", sort=False):
        champion = scorers.champions.get(str(entity))
        if champion is None:
            continue
        parts.append(_rescore(rows.reset_index(drop=True), champion))
    if not parts:
        return pd.DataFrame()
    return _undecided(bundle_groups(pd.concat(parts, ignore_index=True), scorers), decided)


def _undecided(cases: pd.DataFrame, decided: dict[tuple[str, str], datetime]) -> pd.DataFrame:
    """Drop cases with a decision taken after they were enqueued (a later score reopens a case)."""
    keep = [decided.get((t, i)) is None or decided[(t, i)] < e
            for t, i, e in zip(cases["entity_type"], cases["entity_id"], cases["enqueued_at"], strict=True)]
    return cases.loc[keep].reset_index(drop=True)


def bundle_groups(cases: pd.DataFrame, scorers: ScorerSet) -> pd.DataFrame:
    """Open cases of a group entity type's members (accounts) linked in one group of their champion's link
    graph become one group case: its members, the group's expected loss (the sum), and the strongest member's
    reasons; a ring is one ticket."""
    cases = cases.assign(members=None)
    for group in (spec for spec in ENTITIES if spec.members is not None):
        cases = _bundle(cases, scorers, group.name, str(group.members))
    return cases


def _bundle(cases: pd.DataFrame, scorers: ScorerSet, group_type: str, member_type: str) -> pd.DataFrame:
    champion = scorers.champions.get(member_type)
    accounts = cases[cases["entity_type"] == member_type]
    if champion is None or champion.artifact.graph is None or accounts.empty:
        return cases
    graph = champion.artifact.graph.graph
    pos = graph.positions(accounts["entity_id"].to_numpy(dtype=object))
    groups = graph.groups
    group_id = pd.Series(
        np.where(pos >= 0, groups.group_ids[groups.labels[np.maximum(pos, 0)]], None), index=accounts.index
    )
    counts = group_id.value_counts()
    linked = group_id[group_id.isin(counts[counts >= 2].index)]
    bundled = []
    for gid, member_index in linked.groupby(linked).groups.items():
        members = cases.loc[member_index]
        expected = members["probability"] * members["exposure"]
        top = members.iloc[int(np.argmax(expected.to_numpy()))].copy()
        exposure = float(members["exposure"].sum())
        top["case_id"], top["entity_type"], top["entity_id"] = f"{group_type}:{gid}", group_type, str(gid)
        top["exposure"] = exposure
        top["probability"] = float(expected.sum() / exposure) if exposure > 0 else float(members["probability"].max())
        top["enqueued_at"] = members["enqueued_at"].min()
        top["members"] = [
            {"entity_id": str(m["entity_id"]), "probability": float(m["probability"]),
             "score": round(float(m["probability"]) * 100, 1), "tier": str(m["tier"])}
            for _, m in members.sort_values("probability", ascending=False).iterrows()
        ]
        bundled.append(top)
    rest = cases.drop(index=linked.index)
    if not bundled:
        return rest.reset_index(drop=True)
    return pd.concat([rest, pd.DataFrame(bundled)], ignore_index=True)


def _rescore(rows: pd.DataFrame, champion: LoadedScorer) -> pd.DataFrame:
    artifact = champion.artifact
    matrix = np.array([r.feature_vector for r in rows["record"]], dtype=np.float64)
    logged_probability = np.array([r.probability for r in rows["record"]])
    # exposure does not depend on the model: the one the score was logged with
    exposure = exposure_estimates(list(rows["record"]))
    same_schema = np.array([r.feature_names_hash == artifact.schema_hash for r in rows["record"]])
    probability = logged_probability.copy()
    if same_schema.any():
        probability[same_schema] = artifact.predict_proba(matrix[same_schema], num_threads=1)
    rows = rows.assign(
        case_id=rows["entity_type"] + ":" + rows["entity_id"],
        probability=probability,
        tier=artifact.tiers.assign(probability),
        exposure=exposure,
        model_name=champion.name,
        model_version=np.where(same_schema, champion.version, [r.model_version for r in rows["record"]]),
        same_schema=same_schema,
    )
    rows["matrix_row"] = list(matrix)
    return rows


def rank_cases(cases: pd.DataFrame, policy: ExpectedLossPolicy, now: datetime) -> RankedQueue:
    return policy.rank(cases[["case_id", "entity_type", "enqueued_at", "probability", "exposure"]], now)


def build_cases(
    cases: pd.DataFrame, ranked: RankedQueue, scorers: ScorerSet, selection: QueueFilter, detail: bool = False
) -> list[Case]:
    """Cases in queue order, filtered, with reasons computed only for the cases returned."""
    table = ranked.to_frame(explain=True)
    out: list[Case] = []
    for row in table.to_dict(orient="records"):
        if selection.tier is not None and row["tier"] != selection.tier:
            continue
        source = cases.iloc[int(row["row"])]
        # a group case is explained by its strongest member
        entity_type = str(source["entity_type"])
        champion = scorers.champions[ENTITIES.get(entity_type).members or entity_type]
        matrix = np.asarray(source["matrix_row"], dtype=np.float64).reshape(1, -1)
        all_reasons = to_reasons(champion, matrix, top_k=None)[0] if source["same_schema"] else []
        positive = sorted((r for r in all_reasons if r.contribution > 0), key=lambda r: -r.contribution)
        risk_type = likely_risk_type(champion.artifact, positive)
        if selection.risk_type is not None and risk_type != selection.risk_type:
            continue
        fields = dict(
            case_id=row["case_id"], entity_type=str(source["entity_type"]), entity_id=str(source["entity_id"]),
            position=len(out) + 1, tier=row["tier"], priority=float(row["priority"]),
            probability=float(source["probability"]), score=round(float(source["probability"]) * 100, 1),
            expected_loss=float(row["expected_loss"]), enqueued_at=source["enqueued_at"],
            sla_due_at=pd.Timestamp(row["sla_due_at"]).to_pydatetime(), hours_to_due=float(row["hours_to_due"]),
            risk_type=risk_type, position_reason=str(row["reason"]), top_reasons=positive[:3],
            members=[Member(**m) for m in source["members"]] if isinstance(source.get("members"), list) else None,
            model_name=str(source["model_name"]), model_version=str(source["model_version"]),
        )
        if detail:
            values = champion.artifact.encoder.decode(matrix)
            features = [
                FeatureValue(name=spec.name, description=spec.description, value=_plain(values[spec.name][0]))
                for spec in champion.artifact.feature_set.features
            ]
            out.append(CaseDetail(**fields, reasons=all_reasons, features=features))
        else:
            out.append(Case(**fields))
        if len(out) >= selection.limit:
            break
    return out


def _plain(value: object) -> float | str | None:
    if value is None:
        return None
    if isinstance(value, (float, np.floating)):
        return None if not np.isfinite(value) else float(value)
    return str(value)
