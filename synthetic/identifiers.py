"""Shared identifiers (device, payment, address, IP range): mostly unique, some benign sharing, dense in rings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from synthetic._types import BoolArray, IntArray
from synthetic.accounts import AccountArrays
from synthetic.config import GeneratorConfig
from synthetic.strings import as_str_series, hex16, splitmix64, str_series
from synthetic.vocab import IDENTIFIER_TYPES

DEVICE, PAYMENT, ADDRESS, IP_RANGE = range(len(IDENTIFIER_TYPES))
_HAS_PROB = np.array([0.95, 0.75, 0.6, 0.7])
# Ring pools: one shared value per this many members (rounded up), per identifier type.
_RING_POOL_DIVISOR = np.array([4, 5, 6, 8])


def _groups(rng: np.random.Generator, candidates: IntArray, sizes: IntArray) -> tuple[IntArray, IntArray]:
    """Assign shuffled candidates to consecutive groups; returns (members, group index per member)."""
    total = min(int(sizes.sum()), len(candidates))
    members = rng.permutation(candidates)[:total]
    group = np.repeat(np.arange(len(sizes)), sizes)[:total]
    return members, group


def _sizes_for(rng: np.random.Generator, n_members: int, low: int, high: int, p: np.ndarray | None) -> IntArray:
    values = np.arange(low, high + 1)
    drawn = rng.choice(values, size=max(n_members // max(low, 1) + 1, 1), p=p)
    return drawn[np.cumsum(drawn) <= n_members].astype(np.int64)


def _share(
    code: IntArray,
    has: BoolArray,
    members: IntArray,
    group_code: IntArray,
    type_index: int,
    active: BoolArray,
) -> None:
    sel = members[active]
    code[sel, type_index] = group_code[active]
    has[sel, type_index] = True


def generate_identifiers(
    config: GeneratorConfig, rng: np.random.Generator, accounts: AccountArrays, account_ids: pa.Array
) -> pd.DataFrame:
    n = accounts.n
    n_types = len(IDENTIFIER_TYPES)
    has = rng.random((n, n_types)) < _HAS_PROB
    has[~has.any(axis=1), DEVICE] = True
    code = np.arange(n * n_types, dtype=np.int64).reshape(n, n_types)
    next_code = n * n_types

    sharing = config.sharing
    not_ring = np.flatnonzero(accounts.ring < 0)

    # households: pairs and triples behind one address and usually one connection
    h_sizes = _sizes_for(rng, round(sharing.household_share * n), 2, 3, np.array([0.75, 0.25]))
    members, group = _groups(rng, not_ring, h_sizes)
    n_groups = len(h_sizes)
    for t, prob in ((ADDRESS, 1.0), (IP_RANGE, 0.8), (PAYMENT, 0.2), (DEVICE, 0.1)):
        group_has = rng.random(n_groups) < prob
        _share(code, has, members, next_code + group, t, group_has[group])
        next_code += n_groups

    # offices and carrier NAT: larger groups that share only an IP range (sometimes a street address)
    o_sizes = _sizes_for(rng, round(sharing.office_share * n), sharing.office_min_size,
                         max(sharing.office_max_size, sharing.office_min_size), None)
    members, group = _groups(rng, not_ring, o_sizes)
    n_groups = len(o_sizes)
    for t, prob in ((IP_RANGE, 1.0), (ADDRESS, 0.3)):
        group_has = rng.random(n_groups) < prob
        _share(code, has, members, next_code + group, t, group_has[group])
        next_code += n_groups

    # merchants running several shops from one back office: dense sharing, yet honest
    m_sizes = _sizes_for(rng, round(sharing.merchant_share * n), 3, 6, None)
    members, group = _groups(rng, not_ring, m_sizes)
    n_groups = len(m_sizes)
    for t, prob in ((DEVICE, 0.6), (PAYMENT, 0.7), (ADDRESS, 0.9), (IP_RANGE, 0.9)):
        member_has = rng.random(len(members)) < prob
        _share(code, has, members, next_code + group, t, member_has)
        next_code += n_groups

    # rings: each member draws most identifier types from a small pool owned by its ring
    ring_members = np.flatnonzero(accounts.ring >= 0)
    if len(ring_members):
        ring_of = accounts.ring[ring_members]
        ring_size = np.bincount(accounts.ring[accounts.ring >= 0])
        pool = np.maximum(1, -(-ring_size[:, None] // _RING_POOL_DIVISOR[None, :]))  # (rings, types)
        offsets = next_code + np.concatenate(([0], np.cumsum(pool.ravel())[:-1])).reshape(pool.shape)
        next_code += int(pool.sum())
        use_pool = rng.random((len(ring_members), n_types)) < config.rings.share_identifier_prob
        pick = (rng.random((len(ring_members), n_types)) * pool[ring_of]).astype(np.int64)
        # one identifier per ring (its drop address, shared card or phone) links every member
        anchor = rng.integers(0, ADDRESS + 1, len(ring_size))[ring_of]
        anchored = np.arange(n_types)[None, :] == anchor[:, None]
        use_pool |= anchored
        pick = np.where(anchored, 0, pick)
        pooled = offsets[ring_of] + pick
        for t in range(n_types):
            _share(code, has, ring_members, pooled[:, t], t, use_pool[:, t])

    acc_idx, type_idx = np.nonzero(has)
    salt = int(rng.integers(0, 2**62))
    values = hex16(splitmix64(code[acc_idx, type_idx], salt))
    return pd.DataFrame(
        {
            "account_id": as_str_series(account_ids.take(pa.array(acc_idx.astype(np.int64)))),
            "identifier_type": str_series(IDENTIFIER_TYPES, type_idx),
            "identifier": as_str_series(values),
        }
    )
