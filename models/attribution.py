"""How a score is attributed to features, which is what reviewers read as reasons.

Two methods, chosen by `TriageSettings.reasons_attribution`:

- `treeshap`: LightGBM's exact TreeSHAP (`pred_contrib`). Costs milliseconds per row (about 7 ms for a
  300-tree, 63-leaf model on one core), ~90× a prediction.
- `path` (the default for serving): per-leaf path attribution, also known as Saabas attribution. Walking
  from a tree's root to the leaf a row reaches, every split moves the expected output from the parent
  node's value to the child's; that change is credited to the split's feature. Summed over trees, the
  credits plus the bias (the sum of root values) equal the raw score exactly, as TreeSHAP's do. It is an
  approximation of Shapley values: a feature split near the root collects the whole change of its split
  instead of a Shapley share, so magnitudes differ and the order can too. benchmarks/README.md reports
  how often its top reasons agree with TreeSHAP's on the reference model.

A row's path attribution depends only on the leaf it reaches in each tree, so the credits are computed
once per leaf into a table (a fraction of a second per model, at load); a row's attribution is then one
`pred_leaf` prediction and a gather-and-sum: about 0.2 ms instead of 7-9 (benchmarks/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import lightgbm as lgb
import numpy as np


class Attribution(StrEnum):
    PATH = "path"
    TREESHAP = "treeshap"


@dataclass(frozen=True)
class LeafPathAttribution:
    table: np.ndarray      # (total leaves, features): the credits of the path to each leaf
    offsets: np.ndarray    # (trees,): the row of each tree's leaf 0 in `table`
    bias: float            # the sum of the trees' root values

    @classmethod
    def from_booster(cls, booster: lgb.Booster) -> LeafPathAttribution:
        trees = booster.dump_model()["tree_info"]
        n_features = booster.num_feature()
        offsets = np.zeros(len(trees), dtype=np.intp)
        blocks: list[np.ndarray] = []
        bias = 0.0
        start = 0
        for t, tree in enumerate(trees):
            offsets[t] = start
            block = np.zeros((int(tree["num_leaves"]), n_features), dtype=np.float64)
            root = tree["tree_structure"]
            if "leaf_index" in root:  # a tree without splits is a constant
                bias += float(root["leaf_value"])
            else:
                bias += float(root["internal_value"])
                _credit_paths(root, np.zeros(n_features), block)
            blocks.append(block)
            start += block.shape[0]
        return cls(np.vstack(blocks), offsets, bias)

    def contributions(self, booster: lgb.Booster, matrix: np.ndarray, num_threads: int = 0) -> np.ndarray:
        """(rows, features) attributions in margin space; each row sums to the raw score minus `bias`."""
        leaves = np.asarray(booster.predict(matrix, pred_leaf=True, num_threads=num_threads), dtype=np.intp)
        leaves = leaves.reshape(len(matrix), -1)
        return self.table[leaves + self.offsets].sum(axis=1)


def _node_value(node: dict[str, Any]) -> float:
    return float(node["leaf_value"] if "leaf_index" in node else node["internal_value"])


def _credit_paths(node: dict[str, Any], credit: np.ndarray, block: np.ndarray) -> None:
    # recursion depth is the tree's depth, bounded by its number of leaves
    if "leaf_index" in node:
        block[int(node["leaf_index"])] = credit
        return
    feature = int(node["split_feature"])
    parent = _node_value(node)
    for side in ("left_child", "right_child"):
        child = node[side]
        step = credit.copy()
        step[feature] += _node_value(child) - parent
        _credit_paths(child, step, block)
