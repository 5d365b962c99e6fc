"""The BentoML service: `bentoml serve serving.service:TriageService`.

Loads the champion scorers (and shadow challengers) once at start-up from the MLflow registry named by the
settings, scores every scored entity type of the registry (`POST /score_<plural>`, one route per type,
generated from `triage.entities`), logs every score off the request path, keeps reviewers' decisions,
serves the ranked investigator queue, and swaps models atomically when an alias moves.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import os
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import bentoml
from pydantic import BaseModel, BeforeValidator, Field
from starlette.responses import JSONResponse

from serving.auth import (
    DEFAULT_MAX_BODY_BYTES,
    BodyLimitMiddleware,
    Principal,
    TriageAuthMiddleware,
    principal_of,
)
from serving.content_type import JsonBodyMiddleware
from serving.openapi import OpenAPIMiddleware
from serving.schemas import (
    MAX_RECORDS_PER_REQUEST,
    MAX_TOP_REASONS,
    QUEUED_MODELS,
    RECORD_MODELS,
    CaseDetail,
    PrioritizeResponse,
    QueueResponse,
    ReasonsMode,
    ScoreResponse,
    score_route,
    whole_number,
)
from serving.web import ui_app
from stores.api_keys import Role
from stores.decisions import Decision, DecisionConflict, StoredDecision
from triage.entities import ENTITIES

# strict whole numbers: `true` is not 1, nor "3" a number (serving.schemas.whole_number)
TopReasons = Annotated[int, Field(ge=1, le=MAX_TOP_REASONS, strict=True, description="Reasons per result"),
                       BeforeValidator(whole_number)]
QueueLimit = Annotated[int, Field(ge=1, le=1000, strict=True), BeforeValidator(whole_number)]
PrioritizeLimit = Annotated[int, Field(ge=1, le=2 * MAX_RECORDS_PER_REQUEST, strict=True),
                            BeforeValidator(whole_number)]
Tier = Annotated[str | None, Field(pattern="^P[0-3]$", description="Only this queue tier")]
log = logging.getLogger("triage.service")
REGISTRY_POLL = Principal("registry-poll", "reload poll", Role.ADMIN)


class FeedbackResponse(BaseModel):
    decision: StoredDecision
    created: bool = Field(description="False when this decision_id was already stored with the same content")


class ServiceStatus(BaseModel):
    status: str = Field(description="ok, or degraded when the store or the registry is unreachable")
    models: dict[str, str | None]
    scoring_log: dict[str, Any]
    audit_log: dict[str, int] = Field(description="Audit entries written and dropped since start-up (this worker)")
    registry_poll_error: str | None


# Two workers: one per core of the 2-core target machine. Scoring is CPU-bound Python holding the GIL, so a
# second process is what uses the second core (benchmarks/README.md: 1.6x the single-record requests/s of one
# worker at concurrency 16, the load client sharing the cores); each worker costs ~450-490 MiB. Change with
# BENTOML_CONFIG_OPTIONS='services.triage.workers=N'.
# Per-request access log lines are off: every score is already in the scoring log and every request in the
# audit log, and BentoML's request metrics stay on at /metrics. Turn them back on with
# BENTOML_CONFIG_OPTIONS='services.triage.logging.access.enabled=true'.
# No OpenTelemetry spans for the scoring endpoints: with no exporter configured (the default) BentoML still
# builds a span per request, ~20% of a one-record request's CPU (benchmarks/README.md, variants table); each
# scoring request is identified by its request_id in the scoring log and the audit log instead. To trace them,
# configure an exporter and BENTOML_CONFIG_OPTIONS='services.triage.tracing.excluded_urls=healthz'.
# (The decorators are applied after the class body, below, once the per-entity endpoints are attached.)
class TriageService:
    def __init__(self) -> None:
        from mlflow import MlflowClient

        from models.attribution import Attribution
        from policy import ExpectedLossPolicy, QueuePolicyConfig
        from serving.audit import AuditWriter
        from serving.framework import cancel_request_timers_when_done, freeze_startup_heap, log_client_errors_briefly
        from serving.metrics import ServiceGauges
        from serving.scorers import PollingReloader, RegistryWatcher
        from stores.audit_log import AuditLog
        from stores.decisions import DecisionStore
        from stores.engine import make_engine
        from stores.migrate import upgrade
        from stores.scoring_log import ScoringLogReader, ScoringLogWriter
        from stores.spool import adopt_orphaned_spools, worker_spool_dir
        from triage.settings import TriageSettings

        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        self.settings = settings = TriageSettings()
        names = settings.model_name_map()
        self.watcher = RegistryWatcher(MlflowClient(settings.tracking_uri), names, settings.serving_alias,
                                       shadow=settings.shadow, attribution=Attribution(settings.reasons_attribution))
        engine = make_engine(settings.database_url)
        upgrade(engine)
        # one spool folder per worker process (a spool is locked to one writer); rows left in the folders of
        # workers that stopped are taken over and replayed by this one
        spool = worker_spool_dir(settings.spool_dir, os.getpid())
        adopt_orphaned_spools(settings.spool_dir, spool)
        self.score_log = ScoringLogWriter(engine, spool)
        self.log_reader = ScoringLogReader(engine)
        self.decisions = DecisionStore(engine)
        policy_config = (
            QueuePolicyConfig.from_file(settings.policy_config) if settings.policy_config else QueuePolicyConfig()
        )
        self.policy = ExpectedLossPolicy(policy_config)
        self.reloader = PollingReloader(self.watcher, settings.reload_poll_seconds, self._on_reload)
        if settings.reload_poll_seconds > 0:
            self.reloader.start()
        self.gauges = ServiceGauges(settings.monitor_dir, self.score_log.metrics)
        self.gauges.start()
        # audit writes never wait on the request path; one thread keeps them in order and batches them
        self.audit = AuditWriter(AuditLog(engine))
        self.audit.start()
        cancel_request_timers_when_done()
        log_client_errors_briefly()
        freeze_startup_heap()  # last: everything loaded above lives as long as the worker

    def _on_reload(self, before: Any, after: Any) -> None:
        log.info("serving %s (was %s)", after.versions(), before.versions())
        self._audit_later(REGISTRY_POLL, "reloaded", "registry", None,
                          {"before": before.versions(), "after": after.versions()})

    def _audit_later(self, who: Principal, action: str, target: str, version: str | None,
                     detail: dict[str, Any]) -> None:
        from stores.audit_log import AuditDraft

        self.audit.submit(AuditDraft(datetime.now(UTC), who.key_id, action, target, version,
                                     {"key_name": who.name, "role": who.role.value, **detail}))

    @bentoml.on_shutdown
    def _shutdown(self) -> None:
        self.reloader.stop()
        self.gauges.stop()
        self.score_log.close(timeout=10.0)
        self.audit.close(timeout=10.0)

    # -- scoring ------------------------------------------------------------------------------------
    def _score(
        self, entity: str, records: list[Any], reasons: ReasonsMode, top_reasons: int, who: Principal
    ) -> ScoreResponse:
        from serving.scoring import log_entries, score_batch, score_response

        scorers = self.watcher.current  # one reference for the whole request: no mixed versions
        rows = [r.model_dump() for r in records]
        now = datetime.now(UTC)
        request_id = uuid.uuid4().hex
        champion = scorers.champions[entity]
        batch = score_batch(champion, rows)
        entries = log_entries(champion, batch, "champion", True, request_id, now)
        challenger = scorers.challengers.get(entity)
        if challenger is not None:
            entries += log_entries(challenger, score_batch(challenger, rows), "challenger", False, request_id, now)
        self.score_log.submit(entries)
        if self.score_log.metrics().store_up:  # when the store is down, scoring goes on unaudited, not stalled
            self._audit_later(who, "scored", entity, champion.version, {"records": len(rows), "request_id": request_id})
        return score_response(champion, batch, reasons, top_reasons)

    # -- the queue ----------------------------------------------------------------------------------
    @bentoml.api
    async def queue(
        self, reviewer_id: Annotated[str, Field(min_length=1, max_length=128)], risk_type: str | None = None,
        tier: Tier = None, limit: QueueLimit = 100,
    ) -> QueueResponse:
        """The open cases in review order (expected loss raised as the SLA nears), re-scored with the current
        champion, with the reason for each position and the top reasons."""
        from serving.cases import QueueFilter, build_cases, open_case_frame, rank_cases

        scorers = self.watcher.current
        now = datetime.now(UTC)
        frame = open_case_frame(self.log_reader, self.decisions, scorers, now, self.settings.queue_window_days)
        if frame.empty:
            return QueueResponse(generated_at=now, cases=[])
        ranked = rank_cases(frame, self.policy, now)
        cases = build_cases(frame, ranked, scorers, QueueFilter(risk_type, tier, limit))
        return QueueResponse(generated_at=now, cases=cases)

    @bentoml.api
    async def case(self, case_id: Annotated[str, Field(min_length=3, max_length=200)]) -> CaseDetail:
        """One open case with every reason and the entity's features as the model saw them (404 if the case
        is not open)."""
        from serving.cases import QueueFilter, build_cases, open_case_frame, rank_cases

        scorers = self.watcher.current
        now = datetime.now(UTC)
        frame = open_case_frame(self.log_reader, self.decisions, scorers, now, self.settings.queue_window_days)
        if frame.empty or case_id not in set(frame["case_id"]):
            return JSONResponse({"error": f"case {case_id!r} is not an open case"}, status_code=404)  # type: ignore[return-value]
        ranked = rank_cases(frame, self.policy, now)
        selected = frame[frame["case_id"] == case_id].index[0]
        position = int(list(ranked.order).index(selected)) + 1
        detail = build_cases(frame.loc[[selected]].reset_index(drop=True), rank_cases(
            frame.loc[[selected]].reset_index(drop=True), self.policy, now), scorers, QueueFilter(limit=1),
            detail=True)[0]
        return detail.model_copy(update={"position": position})  # type: ignore[return-value]

    async def _prioritize(self, ctx: bentoml.Context, limit: int, **queued: list[Any]) -> PrioritizeResponse:
        """Rank a set of open cases (new and already queued): each is re-scored with the current champion and
        ordered by expected loss raised as its SLA nears; returns order, tier, SLA due time and the reason
        for each position. Send the cases under each entity type's plural (`listings`, `accounts`, ...);
        an empty request ranks nothing."""
        from serving.prioritize import prioritize_cases

        total = sum(len(cases) for cases in queued.values())
        if total > 2 * MAX_RECORDS_PER_REQUEST:
            ctx.response.status_code = 400
            return JSONResponse(  # type: ignore[return-value]
                {"error": f"at most {2 * MAX_RECORDS_PER_REQUEST} cases per request",
                 "detail": [{"loc": [next(iter(queued))], "msg": "too many cases"}]}, status_code=400)
        scorers = self.watcher.current
        by_entity = {ENTITIES.plural_to_name(plural): cases for plural, cases in queued.items()}
        response = prioritize_cases(scorers, self.policy, by_entity, limit, self.score_log)
        self._audit_later(principal_of(ctx.request), "prioritized", "queue", None,
                          {**{plural: len(cases) for plural, cases in queued.items()}, "models": scorers.versions()})
        return response

    # -- decisions ----------------------------------------------------------------------------------
    @bentoml.api
    async def feedback(self, decision: Decision, ctx: bentoml.Context) -> FeedbackResponse:
        """Record a reviewer's decision, durably, before answering. Idempotent on `decision_id`: a retry with
        the same content answers 200 with `created: false`; the same id with other content answers 409."""
        try:
            stored, created = self.decisions.record(decision)
        except DecisionConflict as exc:
            # BentoML copies the context's status onto any response of an endpoint that takes `ctx`
            ctx.response.status_code = 409
            return JSONResponse(  # type: ignore[return-value]
                {"error": str(exc), "fields": list(exc.fields)}, status_code=409
            )
        ctx.response.status_code = 201 if created else 200
        if created:
            self._audit_later(principal_of(ctx.request), "decided", decision.case_id, decision.model_version,
                              {"decision_id": decision.decision_id, "outcome": str(decision.outcome),
                               "reviewer_id": decision.reviewer_id})
        return FeedbackResponse(decision=stored, created=created)

    # -- operations ---------------------------------------------------------------------------------
    @bentoml.api
    async def status(self) -> ServiceStatus:
        """Loaded model versions, the scoring log's backlog and health; `degraded` when a dependency is down."""
        return self._status_now()

    def _status_now(self) -> ServiceStatus:
        metrics = self.score_log.metrics()
        poll_error = self.reloader.last_error
        degraded = (not metrics.store_up) or poll_error is not None
        return ServiceStatus(
            status="degraded" if degraded else "ok", models=self.watcher.current.versions(),
            scoring_log=dataclasses.asdict(metrics), audit_log=dataclasses.asdict(self.audit.stats()),
            registry_poll_error=poll_error,
        )

    @bentoml.api
    async def reload(self, ctx: bentoml.Context) -> ServiceStatus:
        """Check the registry now and swap to any moved alias (atomically; requests in flight finish on the
        models they started with)."""
        from anyio import to_thread

        before = self.watcher.current.versions()
        changed = await to_thread.run_sync(self.watcher.refresh)
        self._audit_later(principal_of(ctx.request), "reloaded", "registry", None,
                          {"before": before, "after": self.watcher.current.versions(), "changed": changed})
        # not `self.status()`: BentoML routes that through its HTTP proxy, without the caller's key (401)
        return self._status_now()


def _score_endpoint(entity: str) -> Callable[..., Any]:
    """`POST /score_<plural>` for one scored entity type: its records validated by the request model generated
    from its field declarations, then the shared `_score`."""
    plural = ENTITIES.scored(entity).plural
    record: Any = RECORD_MODELS[entity]
    records = Annotated[list[record],
                        Field(min_length=1, max_length=MAX_RECORDS_PER_REQUEST, description=f"1 to 1,000 {plural}")]

    async def endpoint(self: TriageService, ctx: bentoml.Context, reasons: ReasonsMode = ReasonsMode.QUEUED,
                       top_reasons: int = 3, **sent: list[Any]) -> ScoreResponse:
        return self._score(entity, sent[plural], reasons, top_reasons, principal_of(ctx.request))

    # BentoML reads the request schema from the signature: name the records' field after the entity type
    endpoint.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
        inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        inspect.Parameter(plural, inspect.Parameter.KEYWORD_ONLY, annotation=records),
        inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=bentoml.Context),
        inspect.Parameter("reasons", inspect.Parameter.KEYWORD_ONLY, annotation=ReasonsMode,
                          default=ReasonsMode.QUEUED),
        inspect.Parameter("top_reasons", inspect.Parameter.KEYWORD_ONLY, annotation=TopReasons, default=3),
    ], return_annotation=ScoreResponse)
    endpoint.__name__ = endpoint.__qualname__ = score_route(entity).lstrip("/")
    endpoint.__doc__ = (f"Score 1–1,000 {plural}. Each result: calibrated probability, score 0–100, tier, "
                        "exposure, expected loss and, for the cases that enter the queue (or as `reasons` asks), "
                        "the top reasons.")
    return bentoml.api(route=score_route(entity), name=endpoint.__name__)(endpoint)


def _prioritize_endpoint() -> Callable[..., Any]:
    async def prioritize(self: TriageService, ctx: bentoml.Context, limit: int = 100,
                         **queued: list[Any]) -> PrioritizeResponse:
        return await self._prioritize(ctx, limit, **queued)

    prioritize.__signature__ = inspect.Signature([  # type: ignore[attr-defined]
        inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=bentoml.Context),
        *(inspect.Parameter(ENTITIES.scored(entity).plural, inspect.Parameter.KEYWORD_ONLY,
                            annotation=list[model], default=[])  # type: ignore[valid-type]
          for entity, model in QUEUED_MODELS.items()),
        inspect.Parameter("limit", inspect.Parameter.KEYWORD_ONLY, annotation=PrioritizeLimit, default=100),
    ], return_annotation=PrioritizeResponse)
    prioritize.__doc__ = TriageService._prioritize.__doc__
    return bentoml.api(route="/prioritize", name="prioritize")(prioritize)


for _entity in ENTITIES.scored_names():
    setattr(TriageService, score_route(_entity).lstrip("/"), _score_endpoint(_entity))
TriageService.prioritize = _prioritize_endpoint()  # type: ignore[attr-defined]
TriageService = bentoml.service(  # type: ignore[misc]
    name="triage", workers=2, traffic={"timeout": 30}, logging={"access": {"enabled": False}},
    tracing={"excluded_urls": [score_route(entity) for entity in ENTITIES.scored_names()]},
)(TriageService)
TriageService = bentoml.asgi_app(ui_app(), path="/ui")(TriageService)  # type: ignore[misc]

# The first middleware added is the outermost: authenticate before reading any body.
# (the decorator turned the class into a bentoml Service, which type checkers do not see)
TriageService.add_asgi_middleware(TriageAuthMiddleware)  # type: ignore[attr-defined]
TriageService.add_asgi_middleware(OpenAPIMiddleware, service=TriageService)  # type: ignore[attr-defined]
TriageService.add_asgi_middleware(  # type: ignore[attr-defined]
    JsonBodyMiddleware, paths={api.route for api in TriageService.apis.values()})  # type: ignore[attr-defined]
TriageService.add_asgi_middleware(BodyLimitMiddleware, max_bytes=DEFAULT_MAX_BODY_BYTES)  # type: ignore[attr-defined]
