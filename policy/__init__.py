"""Queue policy, capacity planning and queue simulation for case triage.

Importing the package has no side effects; matplotlib and tqdm are imported only when used.
"""

from policy.capacity import CapacityPlanner, DailyCutoff, StaffingRecommendation, recommend_staff
from policy.cases import CASE_COLUMNS, upsert_cases, validate_cases
from policy.config import (
    CapacityConfig,
    HandleTimeConfig,
    QueuePolicyConfig,
    SimulationConfig,
    TierConfig,
    UrgencyBoostConfig,
)
from policy.priority import (
    ExpectedLossPolicy,
    FifoPolicy,
    OraclePolicy,
    ProbabilityPolicy,
    RulesBaselineConfig,
    RulesBaselinePolicy,
)
from policy.ranking import QueuePolicy, RankedQueue, RankingPolicy, assign_tiers, urgency_boost
from policy.simulation import (
    ARRIVAL_COLUMNS,
    SimulationResult,
    compare_policies,
    per_day_frame,
    plot_comparison,
    run_policies,
    simulate_queue,
    summarise,
)

__all__ = [
    "ARRIVAL_COLUMNS",
    "CASE_COLUMNS",
    "CapacityConfig",
    "CapacityPlanner",
    "DailyCutoff",
    "ExpectedLossPolicy",
    "FifoPolicy",
    "HandleTimeConfig",
    "OraclePolicy",
    "ProbabilityPolicy",
    "QueuePolicy",
    "QueuePolicyConfig",
    "RankedQueue",
    "RankingPolicy",
    "RulesBaselineConfig",
    "RulesBaselinePolicy",
    "SimulationConfig",
    "SimulationResult",
    "StaffingRecommendation",
    "TierConfig",
    "UrgencyBoostConfig",
    "assign_tiers",
    "compare_policies",
    "per_day_frame",
    "plot_comparison",
    "recommend_staff",
    "run_policies",
    "simulate_queue",
    "summarise",
    "upsert_cases",
    "urgency_boost",
    "validate_cases",
]
