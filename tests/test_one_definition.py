"""Each concept is computed once, and the places that use it agree: account groups (features, queue and
reports), the account-age rule, the seller-context join, the exposure a score was logged with, and the alias
move. Each test would fail if a copy drifted from the one definition."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features import columns_from_frame, feature_set_for
from features.context import account_age_days
from features.exposure import exposure_of
from features.graph import SOLO, LinkGraph
from jobs.batch import read_records
from jobs.simulation import _rules_columns
from models.registry import load_scorer
from reports.sources import account_groups, age_band, raw_segments
from serving.scoring import log_entries, score_batch
from training.datasets import entity_file, load_entities, raw_frame
from training.distributed import read_labelled
from triage.entities import ENTITIES

ROOT = Path(__file__).resolve().parents[1]
PRODUCT_PACKAGES = ("cli", "serving", "reports", "jobs", "loop", "training", "models", "features", "delivery",
                    "stores", "policy", "synthetic", "triage")


def test_report_groups_are_the_graph_features_groups(small_dataset: Path) -> None:
    accounts = load_entities(small_dataset, "account")
    assert accounts.graph is not None
    served = accounts.graph.graph.groups.labels_of()  # what the queue bundles by (the artifact's snapshot)
    identifiers = pd.read_parquet(entity_file(small_dataset, "account", "identifiers"))
    reported = account_groups(identifiers)
    linked = served[served != SOLO]
    assert len(linked) > 100
    assert reported.reindex(linked.index).tolist() == linked.tolist()
    assert set(reported[reported == SOLO].index) <= set(served[served == SOLO].index)


def test_report_groups_ignore_hub_identifiers_like_the_features() -> None:
    # a public Wi-Fi range shared by 60 accounts must not glue them into one group (the reports' former copy did)
    hub = pd.DataFrame({"account_id": [f"A{i}" for i in range(60)], "identifier_type": "ip_range",
                        "identifier": "wifi"})
    pair = pd.DataFrame({"account_id": ["A1", "B1"], "identifier_type": "device", "identifier": "d1"})
    groups = account_groups(pd.concat([hub, pair], ignore_index=True))
    assert groups["A1"] == groups["B1"] != SOLO
    assert (groups.drop(["A1", "B1"]) == SOLO).all()
    graph = LinkGraph.from_identifiers(pd.concat([hub, pair]), groups.index.to_numpy())
    assert (graph.groups.labels_of().reindex(groups.index) == groups).all()


@pytest.mark.parametrize("entity", ["listing", "account"])
def test_one_account_age_rule(small_dataset: Path, entity: str) -> None:
    data = load_entities(small_dataset, entity)
    head = data.subset(np.arange(len(data)) < 3000)
    columns = head.columns()
    rule = ENTITIES.get(entity).age
    assert rule is not None
    age = account_age_days(columns, entity)
    feature = head.feature_set.by_name[rule.feature].compute(columns)
    np.testing.assert_array_equal(feature, age)
    np.testing.assert_array_equal(_rules_columns(head)["account_age_days"].to_numpy(), age)
    bands = raw_segments(head.frame, entity)["account_age_band"].to_numpy()
    np.testing.assert_array_equal(bands, age_band(age))


def test_one_seller_context_join(small_dataset: Path) -> None:
    context = sorted(name for link in ENTITIES.get("listing").links for name in link.columns.values())
    trained = raw_frame(small_dataset, "listing").set_index("listing_id")[context].sort_index()
    batch = read_records(load_scorer_free_artifact(), small_dataset / "listings.parquet",
                         linked={"account": small_dataset / "accounts.parquet"}).compute()
    batched = batch.set_index("listing_id")[context].sort_index()
    distributed = read_labelled(small_dataset, "listing").compute().set_index("listing_id")[context].sort_index()
    pd.testing.assert_frame_equal(batched, trained, check_dtype=False, check_index_type=False)
    pd.testing.assert_frame_equal(distributed, trained, check_dtype=False, check_index_type=False)


def load_scorer_free_artifact() -> Any:
    """`read_records` needs only an artifact's feature set and entity: a stand-in without a model."""

    class ListingOnly:
        feature_set = feature_set_for("listing")
        entity = "listing"

    return ListingOnly()


def test_the_logged_exposure_is_the_feature_sets_exposure(trained_store: object, small_dataset: Path) -> None:
    from mlflow import MlflowClient

    settings = trained_store.settings  # type: ignore[attr-defined]
    for entity in ENTITIES.scored_names():
        scorer = load_scorer(MlflowClient(settings.tracking_uri), settings.model_name(entity))
        frame = raw_frame(small_dataset, entity).head(200)
        records: list[dict[str, Any]] = frame.to_dict(orient="records")  # type: ignore[assignment]
        batch = score_batch(scorer, [{k: (None if isinstance(v, float) and np.isnan(v) else v)
                                      for k, v in r.items()} for r in records])
        logged = log_entries(scorer, batch, "champion", True, None, datetime.now(UTC))
        expected = exposure_of(scorer.artifact.feature_set, columns_from_frame(frame, scorer.artifact.feature_set),
                               scorer.artifact.encoder.typical)
        np.testing.assert_allclose(np.array([r.exposure for r in logged], dtype=float), expected)
        np.testing.assert_allclose(np.array([r.exposure_estimate for r in logged]), expected)
        # a row logged before exposure was stored: the one recovery rule gives the same value where p > 0
        old = [r for r in logged if r.probability > 0][:20]
        recovered = [type(r)(**{**{f: getattr(r, f) for f in r.__dataclass_fields__}, "exposure": None}) for r in old]
        np.testing.assert_allclose(np.array([r.exposure_estimate for r in recovered]),
                                   np.array([r.exposure for r in old], dtype=float), rtol=1e-9)


def _calls_in_product_code(attribute: str) -> set[str]:
    """Product modules (not tests or benchmarks) that call `<anything>.<attribute>(...)`."""
    found = set()
    for package in PRODUCT_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr == attribute):
                    found.add(str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("call", ["set_registered_model_alias", "delete_registered_model_alias"])
def test_registry_aliases_move_in_one_place(call: str) -> None:
    assert _calls_in_product_code(call) <= {"models/registry.py"}


def test_alias_history_is_written_in_one_place() -> None:
    # AliasHistory.record: only the one alias move (with its audit entry) writes the alias history
    writers = {path for path in _calls_in_product_code("record")
               if "AliasHistory" in (ROOT / path).read_text()}
    assert writers == {"models/registry.py"}


def test_the_seller_join_lives_in_features_only() -> None:
    # the former copies (training, batch scoring, the Dask reader) each joined the accounts table themselves
    for package in PRODUCT_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            relative = str(path.relative_to(ROOT))
            if relative != "features/context.py" and not relative.startswith("synthetic/"):
                assert 'drop_duplicates("account_id"' not in path.read_text(), relative
