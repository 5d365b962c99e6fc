"""`triage retrain`: close the loop. Train a challenger on what reviewers decided (the feature vectors as they
were scored, point in time) plus the base data set, compare it with the champion on the same held-out recent
window, and move `champion` only when the challenger wins by the configured metric and margin; otherwise it
becomes `challenger`, so the service can shadow it (`training.compare`).

Category codes. A logged vector holds category *codes* of the encoder of the model version that scored it
(usually the champion; its `schema_hash` names the vocabulary). Codes of two vocabularies must never be mixed,
so every logged vector is decoded with its own version's encoder back to readable values, and every row (logged
and base) is then encoded once with the challenger's encoder. That encoder keeps the champion's vocabulary
unchanged (same codes for known categories) and appends categories first seen in the training rows, up to the
encoder's cap, so a new category (drift) gets a code instead of being "missing". A value that was unknown to
the scoring model was logged as missing; that information is gone, and it stays missing.

Rows and windows (`now`, `window_days`, `config.split`):
- recent window: the last `window_days` of final decisions before `now`; held out, both models scored on it.
- logged training rows: older decisions; the last `split.valid_days` of them validate (early stopping,
  calibration, tiers), the rest train. A logged entity also in the base data's test window is held out.
- base data (optional): the usual time split; its train/valid rows join, its test window is the second
  comparison window (with the oracle when the data has ground truth). A base row whose entity was decided
  is replaced by the decision (the reviewer's label is the fresher one).
Promotion: the challenger must win on every window that could be evaluated (both classes present).

MLflow keeps no alias history (an alias only says where it points now), so every move made here is recorded
in `stores.alias_history.AliasHistory` and the audit log as well; `alias_history()` reads it back.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features import FeatureEncoder, FeatureKind, FeatureSet, feature_set_for
from features.graph import GraphSnapshot
from models.registry import CHALLENGER, CHAMPION
from stores.alias_history import AliasChange
from stores.records import TimeWindow, require_aware_utc, utc_now
from training.compare import (
    DecidedCases,
    case_loss,
    challenger_wins,
    decided_cases,
    finite,
    logged_exposure,
    markdown_table,
    metric_table,
    scored_metrics,
)
from training.config import TrainConfig
from triage.settings import TriageSettings

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from sqlalchemy.engine import Engine

    from models.artifact import ScorerArtifact
    from models.registry import LoadedScorer
    from training.datasets import LabelledEntities
    from training.split import TimeSplit

ACTOR = "retrain"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
COMPARED_METRICS = ("roc_auc", "pr_auc", "brier", "ece", "precision_at_k", "recall_at_k", "loss_captured_at_k")


class SchemaMismatchError(ValueError):
    """Logged feature vectors cannot be read with the current feature definitions."""


# -- feature values ↔ model rows -------------------------------------------------------------------------
# -- cases ----------------------------------------------------------------------------------------------------
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


def logged_cases(
    engine: Engine, model_name: str, entity: str, until: datetime,
    encoder_for_version: Callable[[str], FeatureEncoder],
) -> tuple[CaseRows, DecidedCases]:
    """Final decisions before `until`, each with its entity's served score at or before the decision (point in
    time), decoded with the encoder of the model version that produced it.

    Refuses (`SchemaMismatchError`) when a logged vector does not follow the current feature definitions or
    its version's encoding: such rows cannot be combined with anything encoded today.
    """
    from stores.decisions import DecisionStore

    feature_set = feature_set_for(entity)
    rows = DecisionStore(engine).decisions_with_scores(TimeWindow(EPOCH, until), model_name=model_name, served=True)
    decided = decided_cases(rows, entity)
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
    probability = np.array([c.score.probability for c in decided.cases], dtype=np.float64)
    exposure = logged_exposure(probability, np.array([c.score.expected_loss for c in decided.cases]))
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
    return CaseRows(values, facts), decided


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


def base_cases(data: LabelledEntities, split: TimeSplit) -> CaseRows:
    """The base data set as cases, with its time split as roles (`train`/`valid`/`test`, the rest `gap`)."""
    fs = data.feature_set
    columns = data.columns()
    exposure = fs.exposure(columns)
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


# -- training ---------------------------------------------------------------------------------------------------
def train_challenger(
    champion: ScorerArtifact, train: CaseRows, valid: CaseRows, config: TrainConfig, k: int, progress: bool = False,
    graph: GraphSnapshot | None = None,
) -> ScorerArtifact:
    """`graph`: the link-graph snapshot the challenger's rows were enriched with (default: the champion's);
    it must travel with the challenger, or its graph features would be missing when it serves."""
    from training.trainer import assemble_scorer, fit_booster

    fs = champion.feature_set
    for name, part in (("training", train), ("validation", valid)):
        if len(np.unique(part.label)) < 2:
            raise ValueError(
                f"the challenger's {name} rows ({len(part)} rows, {int(part.label.sum())} positives) hold one class "
                "only: give base data (--data), decide more cases, or shorten --window-days / split.valid_days"
            )
    encoder = champion.encoder.extended(CaseRows.concat([train, valid], fs).values)
    booster, margin_valid = fit_booster(encoder.encode_values(train.values), train.label,
                                        encoder.encode_values(valid.values), valid.label, fs, config.lightgbm,
                                        f"retrain {fs.entity}", progress)
    return assemble_scorer(
        booster, encoder, margin_valid, valid.label, valid.days, config,
        graph=champion.graph if graph is None else graph,
        metadata={"trained_by": ACTOR, "base_vocabulary": champion.schema_hash},
    )


# -- comparison -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WindowComparison:
    name: str
    description: str
    rows: int
    positives: int
    champion: dict[str, float]
    challenger: dict[str, float]
    oracle: dict[str, float] | None = None

    def table(self) -> pd.DataFrame:
        return metric_table(self.champion, self.challenger)


def compare_on_cases(name: str, description: str, cases: CaseRows, models: Mapping[str, ScorerArtifact],
                     k: int) -> WindowComparison:
    """Each model scores the same rows, encoded with its own vocabulary (as serving would have)."""
    metrics = {}
    for role, artifact in models.items():
        probability = artifact.predict_proba(artifact.encoder.encode_values(cases.values))
        exposure = cases.facts["exposure"].to_numpy(dtype=np.float64)
        metrics[role] = scored_metrics(cases.days, cases.label, cases.facts["loss"].to_numpy(dtype=np.float64),
                                       probability, probability * exposure, k)
    return WindowComparison(name, description, len(cases), int(cases.label.sum()), metrics["champion"],
                            metrics["challenger"])


# -- the report -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetrainReport:
    entity: str
    model_name: str
    run_id: str
    champion_version: str
    challenger_version: str
    promoted: bool
    decision: str
    promotion_metric: str
    promotion_margin: float
    windows: tuple[WindowComparison, ...]
    data: dict[str, int]
    alias_moves: tuple[AliasChange, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def table(self) -> pd.DataFrame:
        """Challenger vs champion per metric, one block per comparison window."""
        frames = {w.name: w.table() for w in self.windows}
        return pd.concat(frames, names=["window", "metric"]) if frames else metric_table({}, {})

    def to_markdown(self) -> str:
        verdict = "promoted to `champion`" if self.promoted else "registered as `challenger` (champion kept)"
        lines = [
            f"## Retrain {self.entity}: {self.model_name} version {self.challenger_version} {verdict}",
            "",
            f"Champion before: version {self.champion_version}. Rule: `{self.promotion_metric}` better by more than "
            f"{self.promotion_margin:g} on every window. {self.decision}",
        ]
        for w in self.windows:
            lines += ["", f"### {w.name}: {w.description} ({w.rows} cases, {w.positives} positive)", "",
                      markdown_table(w.table())]
        lines += ["", "### Data", "", markdown_table(pd.DataFrame({"rows": self.data}).rename_axis("part"), "{:.0f}")]
        if self.alias_moves:
            lines += ["", "### Alias moves", ""] + [
                f"- `{m.alias}` → {m.version or '(removed)'} at {m.set_at.isoformat()}: {m.reason}"
                for m in self.alias_moves
            ]
        lines += ["", *(f"- {note}" for note in self.notes)] if self.notes else []
        return "\n".join(lines) + "\n"


# -- alias history ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AliasPeriod:
    alias: str
    version: str
    start: datetime
    end: datetime | None  # None: still holds
    set_by: str
    reason: str


@dataclass(frozen=True)
class AliasTimeline:
    """Every recorded alias move of one model, oldest first; answers "which version was champion when"."""

    model_name: str
    changes: tuple[AliasChange, ...]

    def version_at(self, alias: str, when: datetime) -> str | None:
        # same rule as AliasHistory.version_at: the latest move at or before `when`, later record wins a tie
        when = require_aware_utc(when, "when")
        current = None
        for change in self.changes:
            if change.alias == alias and change.set_at <= when:
                current = change.version
        return current

    def champion_at(self, when: datetime) -> str | None:
        return self.version_at(CHAMPION, when)

    def periods(self, alias: str | None = None) -> list[AliasPeriod]:
        out: list[AliasPeriod] = []
        aliases = sorted({c.alias for c in self.changes}) if alias is None else [alias]
        for name in aliases:
            moves = [c for c in self.changes if c.alias == name]
            for move, after in zip(moves, [*moves[1:], None], strict=True):
                if move.version is not None:
                    out.append(AliasPeriod(name, move.version, move.set_at, None if after is None else after.set_at,
                                           move.set_by, move.reason))
        return out

    def table(self) -> pd.DataFrame:
        rows = [{"alias": p.alias, "version": p.version, "from": p.start.isoformat(),
                 "until": "now" if p.end is None else p.end.isoformat(), "set_by": p.set_by, "reason": p.reason}
                for p in self.periods()]
        return pd.DataFrame(rows, columns=["alias", "version", "from", "until", "set_by", "reason"])

    def to_markdown(self) -> str:
        table = self.table()
        body = markdown_table(table.set_index("alias")) if len(table) else "_no alias moves recorded_"
        return f"## Alias history: {self.model_name}\n\n{body}\n"


def alias_history(settings: TriageSettings, model_name: str, alias: str | None = None) -> AliasTimeline:
    """The recorded alias moves of `model_name` (from the store: MLflow only knows where an alias points now)."""
    from stores.alias_history import AliasHistory
    from stores.engine import make_engine
    from stores.schema import create_all

    engine = make_engine(settings.database_url)
    try:
        create_all(engine)
        return AliasTimeline(model_name, tuple(AliasHistory(engine).history(model_name, alias)))
    finally:
        engine.dispose()


# -- alias moves --------------------------------------------------------------------------------------------------
def _move_aliases(
    client: MlflowClient, engine: Engine, model_name: str, version: str, promoted: bool, reason: str,
    detail: Mapping[str, Any],
) -> list[AliasChange]:
    """Point the aliases as decided, recording each move in the alias history and the audit log."""
    from models.registry import alias_version, set_alias
    from stores.alias_history import AliasHistory
    from stores.audit_log import AuditLog

    history, audit = AliasHistory(engine), AuditLog(engine)
    moves: list[AliasChange] = []

    def record(alias: str, to: str | None, why: str, action: str, before: str | None, at: datetime) -> None:
        change = history.record(model_name, alias, to, set_by=ACTOR, reason=why[:2000], set_at=at)
        audit.record(ACTOR, action, model_name, model_version=to or before, at=at,
                     detail={"alias": alias, "from": before, "to": to, "reason": why[:2000], **detail})
        moves.append(change)

    before = {alias: alias_version(client, model_name, alias) for alias in (CHAMPION, CHALLENGER)}
    # a move made outside this history (`triage train`, `triage promote`, the MLflow UI) would make the history
    # answer wrongly from here on: record what the registry says now, before moving anything
    now = utc_now()
    for alias, current in before.items():
        if current is not None and history.version_at(model_name, alias, now) != current:
            record(alias, current, f"reconciled: the registry had {alias}={current}, set outside the alias "
                   "history (when is unknown; at the latest now)", "alias_reconciled", current, now)
    # one instant for the whole decision, so no time shows both the new champion and the superseded challenger
    moved_at = utc_now()
    if promoted:
        set_alias(client, model_name, CHAMPION, version)
        record(CHAMPION, version, reason, "alias_set", before[CHAMPION], moved_at)
        if before[CHALLENGER] is not None and before[CHALLENGER] != version:
            # the old challenger lost to the champion this version just beat: shadowing it has no purpose left
            client.delete_registered_model_alias(model_name, CHALLENGER)
            record(CHALLENGER, None, f"superseded: version {version} was promoted to {CHAMPION}", "alias_removed",
                   before[CHALLENGER], moved_at)
    else:
        set_alias(client, model_name, CHALLENGER, version)
        record(CHALLENGER, version, reason, "alias_set", before[CHALLENGER], moved_at)
    return moves


# -- the job ------------------------------------------------------------------------------------------------------
def _load_base(base_data_dir: Path, entity: str, config: TrainConfig) -> tuple[LabelledEntities, TimeSplit]:
    from training.datasets import load_entities
    from training.split import TimeSplitConfig, time_split

    data = load_entities(base_data_dir, entity)
    split_cfg = config.split
    return data, time_split(data, TimeSplitConfig(split_cfg.test_days, split_cfg.valid_days, split_cfg.gap_days))


def retrain(
    settings: TriageSettings,
    entity: str,
    base_data_dir: Path | None,
    config: TrainConfig,
    window_days: int,
    now: datetime | None = None,
    progress: bool = False,
) -> RetrainReport:
    """Train a challenger on decided traffic (+ base data), compare with the champion, promote only if it wins.

    Raises `SchemaMismatchError` when logged vectors cannot be combined with today's features, `ValueError` when
    there is nothing to compare on or a training part holds one class only, and the registry's
    `ModelNotFoundError` when there is no champion yet (run `triage train` first).
    """
    import mlflow

    from models.registry import alias_version, load_scorer, log_scorer
    from stores.engine import make_engine
    from stores.schema import create_all
    from training.pipeline import configure_mlflow, data_fingerprint

    if window_days < 1:
        raise ValueError(f"window_days must be at least 1, got {window_days}")
    if config.promotion_metric not in COMPARED_METRICS:
        raise ValueError(f"promotion_metric must be one of {COMPARED_METRICS}, got {config.promotion_metric!r}")
    now = require_aware_utc(now if now is not None else utc_now(), "now")
    fs = feature_set_for(entity)
    model_name = settings.model_name(entity)
    k = config.review_capacity_per_day[entity]
    metric, margin = config.promotion_metric, config.promotion_margin
    client = configure_mlflow(settings)
    champion = load_scorer(client, model_name, alias=CHAMPION)
    encoders: dict[str, FeatureEncoder] = {champion.version: champion.artifact.encoder}

    def encoder_for(version: str) -> FeatureEncoder:
        if version not in encoders:
            encoders[version] = load_scorer(client, model_name, version=version).artifact.encoder
        return encoders[version]

    engine = make_engine(settings.database_url)
    try:
        create_all(engine)
        with mlflow.start_run(run_name=f"retrain-{entity}") as run:
            mlflow.set_tags({"entity": entity, "job": "retrain", "champion_before": champion.version})
            logged, decided = logged_cases(engine, model_name, entity, now, encoder_for)
            base_data, split = _load_base(base_data_dir, entity, config) if base_data_dir is not None else (None, None)
            base = base_cases(base_data, split) if base_data is not None and split is not None else None
            recent_start = now - timedelta(days=window_days)
            assign_roles(logged, base, recent_start, config.split.valid_days)
            parts = [logged] if base is None else [logged, base]
            rows = CaseRows.concat(parts, fs)
            train, valid, recent = rows.role("train"), rows.role("valid"), rows.role("recent")
            if len(np.unique(recent.label)) < 2 and base is None:
                raise ValueError(
                    f"the recent window ({window_days} days before {now.isoformat()}) has {len(recent)} decided "
                    f"cases with {int(recent.label.sum())} positives: nothing to compare the models on; widen "
                    "--window-days or give base data (--data)"
                )
            data_counts = _data_counts(rows, decided)
            mlflow.log_params({
                "entity": entity, "window_days": window_days, "now": now.isoformat(),
                "recent_start": recent_start.isoformat(), "base_data": str(base_data_dir or "none"),
                "promotion_metric": metric, "promotion_margin": margin, "review_capacity_per_day": k,
                "champion_version": champion.version, "champion_schema": champion.artifact.schema_hash,
                **({"base_data_fingerprint": data_fingerprint(base_data)} if base_data is not None else {}),
                **{f"split.{k_}": v for k_, v in config.split.model_dump().items()},
                **{f"rows.{k_}": v for k_, v in data_counts.items()},
            })
            with mlflow.start_run(run_name=f"challenger-{entity}", nested=True):
                mlflow.set_tags({"entity": entity, "job": "retrain-fit"})
                mlflow.log_params({f"lgbm.{k_}": v for k_, v in config.lightgbm.model_dump().items()})
                # the base data's snapshot as of its cutoff: the same label visibility the champion was built with
                graph = (base_data.graph.known_by(split.cutoff.timestamp())
                         if base_data is not None and split is not None and base_data.graph is not None else None)
                challenger = train_challenger(champion.artifact, train, valid, config, k, progress, graph=graph)
                windows, notes = _compare(champion, challenger, recent, window_days, base_data, split, k)
                wins = {w.name: challenger_wins(w.challenger[metric], w.champion[metric], metric, margin)
                        for w in windows}
                for w in windows:
                    mlflow.log_metrics(finite({f"{w.name}_{k_}": v for k_, v in w.challenger.items()}))
                challenger.metadata.update(
                    run_id=run.info.run_id, windows={w.name: w.challenger for w in windows},
                    champion_before=champion.version, decision_thresholds=challenger.tiers.to_dict(),
                )
                info = log_scorer(challenger, registered_model_name=model_name)
            version = str(info.registered_model_version)
            for w in windows:
                for role, values in (("champion", w.champion), ("challenger", w.challenger)):
                    mlflow.log_metrics(finite({f"{w.name}.{role}.{k_}": v for k_, v in values.items()}))
                if w.oracle is not None:
                    mlflow.log_metrics(finite({f"{w.name}.oracle.{k_}": v for k_, v in w.oracle.items()}))
            promoted = all(wins.values())
            champion_now = alias_version(client, model_name, CHAMPION)
            if promoted and champion_now != champion.version:
                promoted = False
                notes.append(f"the champion moved to version {champion_now} during the retrain: not promoting over a "
                             "model this run did not compare against")
            decision = _decision_text(windows, metric, margin, promoted)
            detail = {"run_id": run.info.run_id, "metric": metric, "margin": margin,
                      "champion_before": champion.version, "windows": {w.name: {"champion": _clean(w.champion[metric]),
                                           "challenger": _clean(w.challenger[metric])} for w in windows}}
            moves = _move_aliases(client, engine, model_name, version, promoted,
                                  f"retrain run {run.info.run_id}: {decision}", detail)
            mlflow.set_tags({"registered_version": version, "promoted": str(promoted), "decision": decision[:5000]})
            report = RetrainReport(
                entity=entity, model_name=model_name, run_id=run.info.run_id, champion_version=champion.version,
                challenger_version=version, promoted=promoted, decision=decision, promotion_metric=metric,
                promotion_margin=margin, windows=tuple(windows), data=data_counts, alias_moves=tuple(moves),
                notes=tuple(notes),
            )
            _log_report(report)
    finally:
        engine.dispose()
    return report


def _compare(
    champion: LoadedScorer, challenger: ScorerArtifact, recent: CaseRows, window_days: int,
    base_data: LabelledEntities | None, split: TimeSplit | None, k: int,
) -> tuple[list[WindowComparison], list[str]]:
    from training.evaluation import evaluate_window

    models = {"champion": champion.artifact, "challenger": challenger}
    windows: list[WindowComparison] = []
    notes: list[str] = []
    if len(np.unique(recent.label)) > 1:
        windows.append(compare_on_cases(
            "recent_decided", f"final decisions of the last {window_days} days (point-in-time logged vectors)",
            recent, models, k))
        if pd.Series(recent.days).value_counts().max() <= k:
            notes.append(f"recent_decided: no day has more than k={k} decided cases, so the capacity metrics "
                         "(precision/recall/loss captured at k) cannot separate the models there")
    else:
        notes.append(f"recent window skipped: {len(recent)} decided cases, {int(recent.label.sum())} positive")
    if base_data is not None and split is not None:
        test = base_data.subset(split.test)
        evaluated = {role: evaluate_window(artifact, test, k) for role, artifact in models.items()}
        windows.append(WindowComparison(
            "base_test", f"base data from {split.cutoff:%Y-%m-%d} (its later window)", len(test), int(test.label.sum()),
            evaluated["champion"].model, evaluated["challenger"].model, evaluated["champion"].oracle))
    if not windows:
        raise ValueError("no window to compare the models on: " + "; ".join(notes))
    return windows, notes


def _data_counts(rows: CaseRows, decided: DecidedCases) -> dict[str, int]:
    facts = rows.facts
    sizes = facts.groupby(["source", "role"]).size()
    counts = {f"{source}.{role}": int(n) for (source, role), n in zip(sizes.index, sizes.to_numpy(), strict=True)}
    counts |= {"train": int((facts["role"] == "train").sum()), "valid": int((facts["role"] == "valid").sum()),
               "train_positives": int(facts.loc[facts["role"] == "train", "label"].sum()),
               "log.escalated_excluded": decided.escalated, "log.superseded_decisions": decided.superseded,
               "log.unscored_decisions": decided.unscored}
    return counts


def _clean(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


def _decision_text(windows: Sequence[WindowComparison], metric: str, margin: float, promoted: bool) -> str:
    parts = [f"{w.name}: challenger {w.challenger[metric]:.4f} vs champion {w.champion[metric]:.4f}" for w in windows]
    verdict = "wins" if promoted else "does not win"
    return f"{metric} (margin {margin:g}) — {'; '.join(parts)}: the challenger {verdict}."


def _log_report(report: RetrainReport) -> None:
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        (out / "retrain_report.md").write_text(report.to_markdown())
        report.table().to_csv(out / "comparison.csv")
        (out / "comparison.json").write_text(json.dumps(
            {w.name: {"champion": finite(w.champion), "challenger": finite(w.challenger),
                      "oracle": finite(w.oracle) if w.oracle else None, "rows": w.rows, "positives": w.positives}
             for w in report.windows}, indent=2))
        mlflow.log_artifacts(str(out), artifact_path="comparison")
