"""`triage simulate`: replay a data set's later window through the investigator queue, day by day, with the
registered champions' scores, and compare policies at the same capacity: FIFO, a hand-written rules
baseline, probability only, expected loss, and the oracle that knows the true probabilities."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pandas as pd

from features import columns_from_frame
from features.context import account_age_days
from loop.report import markdown_table
from models.artifact import ScorerArtifact
from policy import (
    CapacityConfig,
    ExpectedLossPolicy,
    FifoPolicy,
    OraclePolicy,
    ProbabilityPolicy,
    QueuePolicyConfig,
    RulesBaselineConfig,
    RulesBaselinePolicy,
    SimulationConfig,
    per_day_frame,
    plot_comparison,
    run_policies,
    summarise,
)
from policy.rules import RULES_RAW_COLUMNS
from training.config import SplitConfig
from training.datasets import LabelledEntities, load_entities
from training.split import TimeSplitConfig, time_split
from triage.entities import ENTITIES

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class SimulationOutcome:
    table: pd.DataFrame
    per_day: pd.DataFrame
    plot: Path
    start: pd.Timestamp
    days: int


def _rules_columns(data: LabelledEntities) -> pd.DataFrame:
    """The raw columns an ops team's hand-written rules read (see policy/rules.py): the record's own, a linked
    entity's context under that entity's names (a listing's seller verification is its `verification`), and
    the age of the account behind it by the registry's one age rule."""
    frame, entity = data.frame, data.feature_set.entity
    out = frame[[c for c in RULES_RAW_COLUMNS if c in frame.columns]].reset_index(drop=True)
    for link in ENTITIES.get(entity).links:
        for source, joined in link.columns.items():
            if source in RULES_RAW_COLUMNS and source not in out.columns and joined in frame.columns:
                out[source] = frame[joined].to_numpy()
    if ENTITIES.get(entity).age is not None:
        out["account_age_days"] = account_age_days(columns_from_frame(frame, data.feature_set), entity)
    return out


def build_arrivals(data: LabelledEntities, artifact: ScorerArtifact) -> pd.DataFrame:
    if data.truth is None:
        raise ValueError("the simulation needs ground truth (true_prob, exposure, losses): a generated data set")
    fs = data.feature_set
    batch = artifact.score_columns(columns_from_frame(data.frame, fs))
    truth = data.truth
    ids = data.frame[fs.id_field].astype(str)
    arrivals = pd.DataFrame({
        "case_id": fs.entity + ":" + ids,
        "entity_type": fs.entity,
        "arrived_at": data.times,
        "probability": batch.probability,
        "exposure": batch.exposure,
        "true_prob": truth["true_prob"].to_numpy(),
        "true_exposure": truth["exposure_if_violation"].to_numpy(),
        "is_violation": truth["is_violation"].to_numpy(dtype=bool),
        "loss_if_missed": truth["loss_if_missed"].to_numpy(),
        "risk_type": truth["risk_type"].to_numpy(),
    })
    return pd.concat([arrivals, _rules_columns(data)], axis=1)


def simulate(
    dataset_dir: Path, artifacts: dict[str, ScorerArtifact], split: SplitConfig, capacity: CapacityConfig,
    policy_config: QueuePolicyConfig, simulation: SimulationConfig | None = None, progress: bool = False,
    out_dir: Path | None = None,
) -> SimulationOutcome:
    """Every policy sees the same arrivals (the later window the scorers were not trained on), the same
    capacity, the same tiers and the same loss model; only the order differs."""
    parts, starts, ends = [], [], []
    for entity, artifact in artifacts.items():
        data = load_entities(dataset_dir, entity)
        cut = time_split(data, TimeSplitConfig(split.test_days, split.valid_days, split.gap_days))
        later = data.subset(cut.test)
        parts.append(build_arrivals(later, artifact))
        starts.append(cut.cutoff)
        ends.append(later.times.max())
    arrivals = pd.concat(parts, ignore_index=True)
    start = max(starts)
    days = max(1, int((min(ends) - start).total_seconds() // SECONDS_PER_DAY))
    policies = {
        "fifo": FifoPolicy(policy_config),
        "rules": RulesBaselinePolicy(policy_config, RulesBaselineConfig()),
        "probability": ProbabilityPolicy(policy_config),
        "expected_loss": ExpectedLossPolicy(policy_config),
        "oracle": OraclePolicy(policy_config),
    }
    results = run_policies(arrivals, policies, capacity, policy_config, start, days, progress=progress,
                           simulation=simulation)
    table = summarise(results)
    per_day = per_day_frame(results)
    out = out_dir or Path(tempfile.mkdtemp(prefix="simulation-"))
    out.mkdir(parents=True, exist_ok=True)
    plot = plot_comparison(table, per_day, out / "queue_simulation.png")
    return SimulationOutcome(table=table, per_day=per_day, plot=Path(plot), start=start, days=days)


def log_simulation(outcome: SimulationOutcome, capacity: CapacityConfig, policy_config: QueuePolicyConfig) -> str:
    with mlflow.start_run(run_name="simulate-queue") as run:
        mlflow.set_tags({"job": "simulate"})
        mlflow.log_params({f"capacity.{k}": v for k, v in capacity.model_dump().items()}
                          | {"start": outcome.start.isoformat(), "days": outcome.days})
        mlflow.log_dict(policy_config.model_dump(mode="json"), "policy_config.json")
        for policy, row in outcome.table.iterrows():
            mlflow.log_metrics({f"{policy}.{k}": float(v) for k, v in row.items() if isinstance(v, (int, float))})
        mlflow.log_artifact(str(outcome.plot))
        mlflow.log_text(markdown_table(outcome.table, "{:,.3f}"), "queue_simulation.md")
        outcome.per_day.to_csv(outcome.plot.with_name("per_day.csv"), index=False)
        mlflow.log_artifact(str(outcome.plot.with_name("per_day.csv")))
        return str(run.info.run_id)
