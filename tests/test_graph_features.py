from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features import FeatureEncoder, columns_from_frame, columns_from_records
from features.account import ACCOUNT_FEATURE_SET, ACCOUNT_GRAPH_CONFIG
from features.graph import (
    GraphFeatureConfig,
    GraphSnapshot,
    LinkGraph,
    enrich_with_graph,
    group_cases,
    snapshot_from_entities,
)

DAY = 86_400.0
ACCOUNTS = ["a", "b", "c", "d", "e", "f"]


def identifier_table() -> pd.DataFrame:
    # a-b share a device, b-c a card, d-e an address; f shares nothing; "zz" is not a listed account
    rows = [
        ("a", "device", "dev1"), ("b", "device", "dev1"),
        ("b", "payment", "card1"), ("c", "payment", "card1"),
        ("d", "address", "addr1"), ("e", "address", "addr1"),
        ("f", "device", "dev9"), ("zz", "device", "dev9"),
    ]
    return pd.DataFrame(rows, columns=["account_id", "identifier_type", "identifier"])


def small_snapshot(config: GraphFeatureConfig | None = None) -> GraphSnapshot:
    graph = LinkGraph.from_identifiers(identifier_table(), ACCOUNTS)
    n = len(ACCOUNTS)
    return GraphSnapshot.build(
        graph, ACCOUNTS,
        {"chargeback_rate": np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]), "refund_rate": np.zeros(n),
         "account_age_days": np.arange(n, dtype=float)},
        created_at=np.zeros(n), observed_at=np.zeros(n),
        label=np.array([1, 0, 1, 0, 0, 0]), label_available_at=np.full(n, 5 * DAY),
        config=config or GraphFeatureConfig(),
    )


def test_components_and_weights_from_identifier_table() -> None:
    graph = LinkGraph.from_identifiers(identifier_table(), ACCOUNTS)
    adjacency = graph.adjacency.toarray()
    assert np.allclose(adjacency, adjacency.T) and np.all(np.diag(adjacency) == 0)
    assert adjacency[0, 1] == 1.0 and adjacency[1, 2] == 1.0 and adjacency[0, 2] == 0.0
    assert adjacency[3, 4] == 0.5  # address links weigh less than device links
    assert adjacency[5].sum() == 0.0  # f's only partner is not a listed account
    groups = graph.groups.frame().set_index("account_id")
    assert groups.loc[["a", "b", "c"], "group_id"].nunique() == 1
    assert groups.loc["a", "group_id"] == "G-a" and groups.loc["d", "group_id"] == "G-d"
    assert groups["group_size"].to_dict() == {"a": 3, "b": 3, "c": 3, "d": 2, "e": 2, "f": 1}
    assert graph.groups.members("G-a") == ["a", "b", "c"]
    assert graph.degree().tolist() == [1, 2, 1, 1, 1, 0]


def test_hub_identifiers_are_ignored() -> None:
    # a public IP range shared by 30 accounts must not glue them into a group
    hub = pd.DataFrame({"account_id": [f"h{i}" for i in range(30)], "identifier_type": "ip_range",
                        "identifier": "wifi"})
    table = pd.concat([identifier_table(), hub, hub.iloc[:2].assign(identifier="dev-x", identifier_type="device")])
    accounts = [*ACCOUNTS, *hub["account_id"]]
    guarded = LinkGraph.from_identifiers(table, accounts, max_accounts_per_identifier=20)
    sizes = guarded.groups.frame().set_index("account_id")["group_size"]
    assert sizes["h0"] == 2 and sizes["h1"] == 2 and sizes["h5"] == 1  # only the shared device links h0-h1
    unguarded = LinkGraph.from_identifiers(table, accounts, max_accounts_per_identifier=None)
    assert unguarded.groups.frame().set_index("account_id")["group_size"]["h5"] == 30


def test_type_weights_and_excluded_types() -> None:
    graph = LinkGraph.from_identifiers(identifier_table(), ACCOUNTS, type_weights={"address": 0.0})
    assert graph.adjacency.toarray()[3, 4] == 0.0
    assert graph.adjacency.toarray()[0, 1] == 1.0  # unlisted types weigh 1


def test_from_edges_is_symmetric_and_counts_repeated_edges() -> None:
    graph = LinkGraph.from_edges(np.array([[0, 1], [1, 2], [0, 1], [3, 3]]), 4)
    adjacency = graph.adjacency.toarray()
    assert adjacency[0, 1] == adjacency[1, 0] == 2.0 and adjacency[3, 3] == 0.0
    assert graph.groups.count == 2 and list(graph.ids) == ["0", "1", "2", "3"]
    normalised = graph.degree_normalised(0.5).adjacency.toarray()
    assert normalised[0, 1] == pytest.approx(2.0 / np.sqrt(2.0 * 3.0))


def test_neighbour_violation_share_is_point_in_time() -> None:
    snapshot = small_snapshot()
    rows = {"account_id": np.array(["b", "b", "b"], dtype=object), "observed_at": np.array([4, 5, 6]) * DAY,
            "created_at": np.zeros(3)}
    # b's neighbours a and c are violations whose labels become known on day 5
    out = enrich_with_graph(rows, snapshot)
    assert out["neighbour_violation_share"].tolist() == [0.0, 1.0, 1.0]
    assert out["neighbour_violation_count"].tolist() == [0.0, 2.0, 2.0]
    # a neighbour's label known after the scoring time never counts, even if it is in the snapshot
    later = snapshot.with_labels(snapshot.label, np.array([5, 0, 9, 0, 0, 0]) * DAY)
    out = enrich_with_graph(rows, later)
    assert out["neighbour_violation_share"].tolist() == [0.0, 0.5, 0.5]
    assert out["neighbour_labelled_violation_share"][0] != out["neighbour_labelled_violation_share"][0]  # NaN
    assert out["neighbour_labelled_violation_share"][1:].tolist() == [1.0, 1.0]


def test_neighbours_created_or_observed_later_are_not_seen() -> None:
    snapshot = small_snapshot()
    created = np.array([0, 0, 10, 0, 0, 0]) * DAY  # c is created on day 10
    observed = np.array([0, 8, 10, 0, 0, 0]) * DAY  # b's signals are from day 8
    snapshot = GraphSnapshot.build(snapshot.graph, ACCOUNTS, snapshot.signals, created_at=created,
                                   observed_at=observed, label=snapshot.label,
                                   label_available_at=snapshot.label_available_at)
    rows = {"account_id": np.array(["b", "b", "a", "a"], dtype=object),
            "observed_at": np.array([7, 11, 7, 9]) * DAY, "created_at": np.zeros(4)}
    out = enrich_with_graph(rows, snapshot)
    assert out["link_degree"].tolist() == [1.0, 2.0, 1.0, 1.0]
    assert out["group_size"].tolist() == [2.0, 3.0, 2.0, 2.0]
    assert out["neighbour_chargeback_rate"][0] == pytest.approx(0.1)  # c does not exist yet
    assert out["neighbour_chargeback_rate"][1] == pytest.approx(0.2)  # a (0.1) and c (0.3)
    assert np.isnan(out["neighbour_chargeback_rate"][2])  # b's signals are observed only on day 8
    assert out["neighbour_chargeback_rate"][3] == pytest.approx(0.2)


def test_group_new_account_share() -> None:
    base = small_snapshot()
    created = np.array([0, 50, 58, 0, 0, 0]) * DAY
    snapshot = GraphSnapshot.build(base.graph, ACCOUNTS, base.signals, created_at=created,
                                   observed_at=np.zeros(6), label=base.label, label_available_at=np.zeros(6))
    rows = {"account_id": np.array(["a", "a", "f"], dtype=object), "observed_at": np.array([60, 100, 60]) * DAY,
            "created_at": np.array([0, 0, 59]) * DAY}
    out = enrich_with_graph(rows, snapshot)
    assert out["group_size"].tolist() == [3.0, 3.0, 1.0]
    assert out["group_new_account_share"].tolist() == pytest.approx([2 / 3, 0.0, 1.0])


def test_account_outside_the_snapshot_is_linked_by_its_identifiers() -> None:
    snapshot = small_snapshot()
    rows = {"account_id": np.array(["new", "lonely"], dtype=object), "observed_at": np.full(2, 40 * DAY),
            "created_at": np.full(2, 40 * DAY)}
    own = pd.DataFrame({"account_id": ["new", "new", "lonely"], "identifier_type": ["device", "address", "device"],
                        "identifier": ["dev1", "addr1", "never-seen"]})
    out = enrich_with_graph(rows, snapshot, identifiers=own)
    assert out["link_degree"].tolist() == [4.0, 0.0]  # a, b (device) and d, e (address)
    assert out["group_size"].tolist() == [6.0, 1.0]  # it joins both groups: 1 + 3 + 2
    assert out["group_new_account_share"].tolist() == pytest.approx([1 / 6, 1.0])
    assert out["neighbour_violation_share"][0] == pytest.approx(1.0 / 3.0)  # weight: a 1 of b 1, d .5, e .5
    assert np.isnan(out["neighbour_violation_share"][1])


@dataclass(frozen=True)
class RandomWorld:
    snapshot: GraphSnapshot
    columns: dict[str, np.ndarray]


def random_world(config: GraphFeatureConfig, seed: int = 3, n: int = 300) -> RandomWorld:
    rng = np.random.default_rng(seed)
    ids = np.array([f"A{i:04d}" for i in range(n)], dtype=object)
    held = rng.integers(0, 90, size=(n, 2))
    table = pd.DataFrame({
        "account_id": np.repeat(ids, 2), "identifier_type": np.tile(["device", "address"], n),
        "identifier": [f"v{v}" for v in held.ravel()],
    })
    created = rng.uniform(0, 100, n) * DAY
    observed = created + rng.uniform(0, 60, n) * DAY
    graph = LinkGraph.from_identifiers(table, ids)
    signals = {"chargeback_rate": np.where(rng.random(n) < 0.1, np.nan, rng.random(n)),
               "refund_rate": rng.random(n), "account_age_days": (observed - created) / DAY}
    snapshot = GraphSnapshot.build(graph, ids, signals, created_at=created, observed_at=observed,
                                   label=(rng.random(n) < 0.2).astype(int),
                                   label_available_at=observed + rng.uniform(0, 40, n) * DAY, config=config)
    return RandomWorld(snapshot, {"account_id": ids, "observed_at": observed, "created_at": created})


@pytest.mark.parametrize("config", [
    GraphFeatureConfig(hop1_stats=("mean", "max", "std"), hop2_stats=("mean", "std"), label_hops=(1, 2)),
    GraphFeatureConfig(hop2_stats=("mean", "max"), label_hops=(2,)),
])
def test_frame_path_equals_single_account_path(config: GraphFeatureConfig) -> None:
    world = random_world(config)
    frame = enrich_with_graph(world.columns, world.snapshot)
    assert set(frame) == set(config.output_names())
    for i in range(0, len(world.columns["account_id"]), 7):
        single = enrich_with_graph({k: v[i:i + 1] for k, v in world.columns.items()}, world.snapshot)
        for name in frame:
            np.testing.assert_allclose(single[name], frame[name][i:i + 1], rtol=1e-9, atol=1e-12, err_msg=name)


def test_uniform_time_shortcut_equals_walk_by_walk_sums() -> None:
    config = GraphFeatureConfig(hop2_stats=("mean", "std"), label_hops=(1, 2))
    world = random_world(config, seed=5)
    n = len(world.columns["account_id"])
    now = {**world.columns, "observed_at": np.full(n, 120 * DAY)}
    uniform = enrich_with_graph(now, world.snapshot)
    # one row a microsecond later makes the times differ, which takes the walk-by-walk path
    nudged = {**now, "observed_at": now["observed_at"] + np.r_[1e-6, np.zeros(n - 1)]}
    walks = enrich_with_graph(nudged, world.snapshot)
    for name in uniform:
        np.testing.assert_allclose(uniform[name][1:], walks[name][1:], rtol=1e-9, atol=1e-12, err_msg=name)


def test_snapshot_round_trip(tmp_path: Path) -> None:
    world = random_world(GraphFeatureConfig(hop1_stats=("mean", "max"), label_hops=(1, 2)))
    world.snapshot.save(tmp_path / "snap")
    loaded = GraphSnapshot.load(tmp_path / "snap")
    assert loaded.config == world.snapshot.config
    assert (loaded.graph.adjacency != world.snapshot.graph.adjacency).nnz == 0
    assert list(loaded.graph.ids) == list(world.snapshot.graph.ids)
    np.testing.assert_array_equal(loaded.label, world.snapshot.label)
    before, after = enrich_with_graph(world.columns, world.snapshot), enrich_with_graph(world.columns, loaded)
    for name in before:
        np.testing.assert_array_equal(before[name], after[name])
    own = pd.DataFrame({"account_id": ["new"], "identifier_type": ["device"], "identifier": ["v1"]})
    row = {"account_id": np.array(["new"], dtype=object), "observed_at": np.array([200 * DAY]),
           "created_at": np.array([200 * DAY])}
    assert enrich_with_graph(row, loaded, identifiers=own)["link_degree"][0] > 0


def test_missing_snapshot_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"snapshot\.json"):
        GraphSnapshot.load(tmp_path)


def test_group_cases_aggregates_linked_accounts() -> None:
    snapshot = small_snapshot()
    scored = pd.DataFrame({
        "account_id": ["a", "b", "c", "d", "e", "f", "unknown"],
        "probability": [0.9, 0.5, 0.1, 0.2, 0.3, 0.99, 0.99],
        "exposure": [100.0, 10.0, 1000.0, 5.0, 5.0, 1e6, 1e6],
        "reasons": [["Shared device", "New account"], ["Shared device"], [], ["Address reuse"],
                    ["Address reuse", "High refunds"], ["x"], ["y"]],
    })
    cases = group_cases(scored, snapshot)
    assert list(cases["group_id"]) == ["G-a", "G-d"]  # f and the unknown account have no linked partner
    first = cases.iloc[0]
    assert first["members"] == ["a", "b", "c"] and first["member_count"] == 3 and first["group_size"] == 3
    assert first["expected_loss"] == pytest.approx(0.9 * 100 + 0.5 * 10 + 0.1 * 1000)
    assert first["max_probability"] == 0.9
    assert first["top_reasons"][:2] == ["Shared device", "New account"]
    assert cases.iloc[1]["top_reasons"][0] == "Address reuse"
    only_two = group_cases(scored[scored["account_id"].isin(["a", "d"])], snapshot.graph)
    assert only_two.empty and "group_id" in only_two.columns


def test_group_cases_pools_reason_objects_per_feature() -> None:
    @dataclass(frozen=True)
    class Reason:
        feature: str
        text: str
        contribution: float

    snapshot = small_snapshot()
    scored = pd.DataFrame({
        "account_id": ["a", "b"], "probability": [0.6, 0.7], "exposure": [1.0, 1.0],
        "reasons": [[Reason("refund_rate", "Refunds on 5.0% of orders", 0.2)],
                    [Reason("refund_rate", "Refunds on 9.0% of orders", 0.5),
                     Reason("country", "Registered in X", 1.0)]],
    })
    cases = group_cases(scored, snapshot)
    assert cases.iloc[0]["members"] == ["b", "a"]
    assert cases.iloc[0]["top_reasons"] == ["Refunds on 9.0% of orders", "Registered in X"]


def test_graph_columns_as_account_features_through_frame_and_records() -> None:
    # the product's account feature set declares the graph features itself
    config = ACCOUNT_GRAPH_CONFIG
    feature_set = ACCOUNT_FEATURE_SET
    assert set(config.output_names()) <= set(feature_set.feature_names)
    now = pd.Timestamp("2026-03-01", tz="UTC")
    frame = pd.DataFrame({
        "account_id": ACCOUNTS, "account_type": "seller", "created_at": now - pd.Timedelta(days=10),
        "observed_at": now, "orders_90d": [10, 20, 30, 40, 50, 0], "chargebacks_90d": [1, 2, 0, 0, 5, 0],
        "refunds_90d": 1,
    })
    columns = columns_from_frame(frame, feature_set)
    snapshot = snapshot_from_entities(LinkGraph.from_identifiers(identifier_table(), ACCOUNTS), columns, feature_set,
                                      label=np.array([1, 0, 0, 0, 0, 0]),
                                      label_available_at=pd.Series([now - pd.Timedelta(days=1)] * 6), config=config)
    assert snapshot.signals["chargeback_rate"][0] == pytest.approx(0.1)
    enriched = {**columns, **enrich_with_graph(columns, snapshot)}
    encoder = FeatureEncoder(feature_set).fit(enriched)
    matrix = encoder.transform(enriched)
    j = encoder.feature_names.index("neighbour_violation_share")
    assert matrix[1, j] == 0.5  # b: a (violation) and c
    records: list[dict[str, object]] = [{str(k): v for k, v in r.items()}
                                        for r in frame.iloc[[1]].to_dict(orient="records")]
    for record in records:
        record["created_at"] = now.to_pydatetime() - timedelta(days=10)
        record["observed_at"] = now.to_pydatetime()
    single = columns_from_records(records, feature_set)
    single = {**single, **enrich_with_graph(single, snapshot)}
    np.testing.assert_allclose(encoder.transform(single)[0], matrix[1], equal_nan=True)
    reason = feature_set.by_name["group_size"].reason_text(3.0)
    assert reason == "In a group of 3 linked accounts"


def test_config_rejects_unknown_statistics() -> None:
    with pytest.raises(ValueError, match="unknown statistic"):
        GraphFeatureConfig(hop1_stats=("median",))
