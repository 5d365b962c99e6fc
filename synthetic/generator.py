"""Entry point: generate a whole synthetic marketplace (accounts, identifiers, listings and hidden truth)."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm.auto import tqdm

from synthetic._types import BoolArray, FloatArray, IntArray
from synthetic.accounts import AccountArrays, generate_accounts
from synthetic.adversary import EVADED_TELLS, adapt_accounts, adapt_listings
from synthetic.config import DriftSpec, GeneratorConfig
from synthetic.dataset import MarketplaceData
from synthetic.extensions import generate_extensions
from synthetic.identifiers import generate_identifiers
from synthetic.items import ITEM_KIND_NAMES
from synthetic.listings import Catalog, ListingArrays, build_catalog, generate_listings, origin_vocabulary
from synthetic.missingness import Masks, account_masks, listing_masks, listing_sources
from synthetic.schema import SCHEMA_VERSION
from synthetic.strings import as_str_series, hex16, null_where, padded_ids, splitmix64, str_series
from synthetic.text import build_text
from synthetic.timeline import hourly_cdf, to_timestamps
from synthetic.truth import Truth, account_truth, listing_truth
from synthetic.vocab import (
    ACCOUNT_RISK_TYPES,
    CATEGORIES,
    COUNTRIES,
    HARM_CLASSES,
    LISTING_RISK_TYPES,
    RISK_TYPE_HARM_CLASS,
    VERIFICATION_LEVELS,
)
from synthetic.wording import build_wording

_STAGES = ("accounts", "identifiers", "listings", "truth", "adversary", "text", "missingness", "assemble")
# Independent random streams per stage, so changing one stage's draws leaves the others' untouched.
# New streams are appended: SeedSequence children depend on their position only.
_STREAMS = ("accounts", "identifiers", "catalog", "listings", "text", "account_truth", "listing_truth",
            "adversary", "missingness")

T = TypeVar("T", AccountArrays, ListingArrays)


def generate_marketplace(config: GeneratorConfig, progress: bool = False) -> MarketplaceData:
    """Generate a marketplace; the same config (seed included) always gives identical data."""
    seeds = np.random.SeedSequence(config.seed).spawn(len(_STREAMS))
    rng = {name: np.random.default_rng(s) for name, s in zip(_STREAMS, seeds, strict=True)}
    specs = config.resolved_drift()
    cdf = hourly_cdf(config.start, config.days, config.volume_growth, config.weekly_amplitude)
    drift_rows: dict[int, int] = {}

    with tqdm(total=len(_STAGES), desc="synthetic marketplace", disable=not progress, unit="stage") as bar:

        bar.set_postfix_str(_STAGES[0])
        upcoming = iter(_STAGES[1:])

        def stage(name: str) -> None:
            # the postfix names the stage now running, so a slow stage is visible while it runs
            bar.update(1)
            bar.set_postfix_str(next(upcoming, "done"))

        acc = generate_accounts(config, rng["accounts"], cdf)
        acc = _permute(acc, np.argsort(acc.created_days, kind="stable"))
        drift_rows |= _apply_covariate_drift(acc, acc.observed_days, specs, "accounts")
        account_ids = padded_ids("A", acc.n, 6)
        stage("accounts")

        identifiers = generate_identifiers(config, rng["identifiers"], acc, account_ids)
        stage("identifiers")

        catalog = build_catalog(rng["catalog"], specs)
        origins = origin_vocabulary(specs)
        wording = build_wording(specs)
        lst = generate_listings(config, rng["listings"], cdf, acc, catalog, origins, wording, specs)
        lst = _permute(lst, np.argsort(lst.created_days, kind="stable"))
        drift_rows |= _apply_covariate_drift(lst, lst.created_days, specs, "listings")
        pattern_specs = [i for i, s in enumerate(specs) if s.kind == "pattern"]
        for j, i in enumerate(pattern_specs):
            drift_rows[i] = int((lst.pattern == 2 + j).sum())
        stage("listings")

        a_truth = account_truth(config, rng["account_truth"], acc)
        l_truth = listing_truth(config, rng["listing_truth"], lst, acc, catalog, origins, wording)
        stage("truth")

        # the truth is fixed above; only what can be observed adapts
        acc, acc_evaded = adapt_accounts(config.adversary, rng["adversary"], acc, a_truth, config.days)
        lst, lst_evaded = adapt_listings(config.adversary, rng["adversary"], lst, l_truth, wording, config.days)
        stage("adversary")

        title, description = build_text(rng["text"], lst, catalog, wording)
        stage("text")

        source = listing_sources(config.missingness, rng["missingness"], acc, lst)
        source_names = tuple(config.missingness.listing_sources)
        l_missing = listing_masks(config.missingness, rng["missingness"], source, lst.bad)
        a_missing = account_masks(config.missingness, rng["missingness"], acc)
        stage("missingness")

        listing_ids = padded_ids("L", lst.n, 7)
        accounts_df = _accounts_frame(config, acc, account_ids, a_missing)
        listings_df = _listings_frame(config, lst, listing_ids, account_ids, title, description, catalog,
                                      origins, str_series(source_names, source), l_missing)
        ring_names = ["", *(f"R{i:04d}" for i in range(int(acc.ring.max(initial=-1)) + 1))]
        account_truth_df = _truth_frame(
            config, "account_id", account_ids, a_truth, ACCOUNT_RISK_TYPES, acc.observed_days,
            str_series(("baseline", "ring"), (acc.ring >= 0).astype(np.int64)), acc_evaded,
        )
        account_truth_df["ring_id"] = str_series(ring_names, acc.ring + 1)
        pattern_names = ("baseline", "ring", *(specs[i].name for i in pattern_specs))
        listing_truth_df = _truth_frame(
            config, "listing_id", listing_ids, l_truth, LISTING_RISK_TYPES, lst.created_days,
            str_series(pattern_names, lst.pattern), lst_evaded,
        )
        listing_truth_df["item_kind"] = str_series(("", *ITEM_KIND_NAMES), lst.kind + 1)
        data = MarketplaceData(
            accounts=accounts_df,
            account_identifiers=identifiers,
            listings=listings_df,
            account_truth=account_truth_df,
            listing_truth=listing_truth_df,
        )
        data.extra = generate_extensions(config, data)
        missing = _missingness_summary(config, source, l_missing, a_missing)
        data.manifest = _manifest(config, specs, drift_rows, data, acc, missing)
        stage("assemble")
    return data


def _permute(arrays: T, order: IntArray) -> T:
    changes = {
        f.name: getattr(arrays, f.name)[order]
        for f in dataclasses.fields(arrays)
        if isinstance(getattr(arrays, f.name), np.ndarray)
    }
    return dataclasses.replace(arrays, **changes)


def _apply_covariate_drift(
    arrays: AccountArrays | ListingArrays, times: FloatArray, specs: tuple[DriftSpec, ...], table: str
) -> dict[int, int]:
    """Scale observables in place before truth is computed, so the truth relation itself does not move."""
    affected: dict[int, int] = {}
    for i, spec in enumerate(specs):
        if spec.kind != "covariate" or spec.table != table or spec.column is None:
            continue
        rows = times >= spec.start_day
        values = getattr(arrays, spec.column)
        scaled = values[rows] * spec.factor
        if np.issubdtype(values.dtype, np.integer):
            lowest = 1 if spec.column == "stock" else 0
            values[rows] = np.maximum(np.round(scaled), lowest).astype(values.dtype)
        elif spec.column == "discount_pct":
            values[rows] = np.clip(scaled, 0.0, 0.95)
        elif spec.column == "engagement_rate":
            values[rows] = np.clip(scaled, 0.0, 5.0)
        else:
            values[rows] = np.round(scaled, 2)
        affected[i] = int(rows.sum())
    return affected


def _float(values: FloatArray, missing: BoolArray) -> FloatArray:
    return np.where(missing, np.nan, values)


def _int(values: IntArray, missing: BoolArray) -> pd.arrays.IntegerArray:
    return pd.arrays.IntegerArray(values.astype(np.int64), missing.copy())


def _str(values: pa.Array, missing: BoolArray) -> pd.Series:
    return as_str_series(null_where(values, missing))


def _codes(words: tuple[str, ...], codes: IntArray, missing: BoolArray) -> pd.Series:
    return _str(pa.array(list(words), type=pa.string()).take(pa.array(codes)), missing)


def _accounts_frame(config: GeneratorConfig, acc: AccountArrays, account_ids: pa.Array, m: Masks) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "account_id": as_str_series(account_ids),
            "account_type": str_series(("seller", "creator"), acc.is_creator.astype(np.int64)),
            "created_at": to_timestamps(config.start, acc.created_days),
            "observed_at": to_timestamps(config.start, acc.observed_days),
            "country": _codes(COUNTRIES, acc.country, m["country"]),
            "verification": _codes(VERIFICATION_LEVELS, acc.verification, m["verification"]),
            "category_focus": _codes(CATEGORIES, acc.category, m["category_focus"]),
            "gmv_90d": _float(acc.gmv_90d, m["gmv_90d"]),
            "orders_90d": _int(acc.orders_90d, m["orders_90d"]),
            "refunds_90d": _int(acc.refunds_90d, m["refunds_90d"]),
            "chargebacks_90d": _int(acc.chargebacks_90d, m["chargebacks_90d"]),
            "disputes_90d": _int(acc.disputes_90d, m["disputes_90d"]),
            "late_shipments_90d": _int(acc.late_shipments_90d, m["late_shipments_90d"]),
            "prior_violations": _int(acc.prior_violations, m["prior_violations"]),
            "followers": _int(acc.followers, m["followers"]),
            "engagement_rate": _float(acc.engagement_rate, m["engagement_rate"]),
            "listings_count": _int(acc.listings_count, m["listings_count"]),
        }
    )


def _listings_frame(
    config: GeneratorConfig, lst: ListingArrays, listing_ids: pa.Array, account_ids: pa.Array,
    title: pa.Array, description: pa.Array, catalog: Catalog, origins: tuple[str, ...], source: pd.Series,
    m: Masks,
) -> pd.DataFrame:
    image_hash = hex16(splitmix64(lst.image_code, config.seed + 7919))
    return pd.DataFrame(
        {
            "listing_id": as_str_series(listing_ids),
            "seller_id": as_str_series(account_ids.take(pa.array(lst.seller))),
            "created_at": to_timestamps(config.start, lst.created_days),
            "title": as_str_series(title),
            "description": _str(description, m["description"]),
            "category": str_series(CATEGORIES, lst.category),
            "brand": _codes(catalog.brand_names, catalog.pair_brand[lst.pair], m["brand"]),
            "price": lst.price,
            "reference_price": _float(lst.reference_price, m["reference_price"]),
            "discount_pct": _float(lst.discount_pct, m["discount_pct"]),
            "stock": _int(lst.stock, m["stock"]),
            "shipping_origin": _codes(origins, lst.origin, m["shipping_origin"]),
            "image_hash": _str(image_hash, m["image_hash"]),
            "source": source,
        }
    )


def _truth_frame(
    config: GeneratorConfig,
    id_column: str,
    ids: pa.Array,
    truth: Truth,
    risk_types: tuple[str, ...],
    entity_days: FloatArray,
    pattern: pd.Series,
    evaded: IntArray,
) -> pd.DataFrame:
    return pd.DataFrame(
        {
            id_column: as_str_series(ids),
            "true_prob": truth.true_prob,
            "is_violation": truth.is_violation,
            "risk_type": str_series(risk_types, truth.risk_type),
            "loss_if_missed": np.where(truth.is_violation, truth.exposure, 0.0),
            "exposure_if_violation": truth.exposure,
            "label": truth.label,
            "label_available_at": to_timestamps(config.start, entity_days + truth.label_delay_days),
            "pattern": pattern,
            "harm_class": str_series(HARM_CLASSES, truth.harm_class),
            "harm": np.where(truth.is_violation, truth.harm_if_violation, 0.0),
            "harm_if_violation": truth.harm_if_violation,
            "evaded_tell": str_series(EVADED_TELLS, evaded),
        }
    )


def _manifest(
    config: GeneratorConfig,
    specs: tuple[DriftSpec, ...],
    drift_rows: dict[int, int],
    data: MarketplaceData,
    acc: AccountArrays,
    missingness: dict[str, Any],
) -> dict[str, Any]:
    def start_of(spec: DriftSpec) -> str:
        ts = pd.Timestamp(config.start) + pd.Timedelta(days=spec.start_day)
        return ts.isoformat()

    lt, at = data.listing_truth, data.account_truth
    return {
        "schema_version": SCHEMA_VERSION,
        "generator": "synthetic.generate_marketplace",
        "seed": config.seed,
        "sizes": {name: len(frame) for name, frame in data.tables().items()}
        | {name: len(tables.records) for name, tables in data.extra.items()},
        "time_range": {"start": config.start.isoformat(), "end": config.end.isoformat(), "days": config.days},
        "drift": [
            {**spec.model_dump(mode="json"), "start": start_of(spec), "rows_affected": drift_rows.get(i, 0)}
            for i, spec in enumerate(specs)
        ],
        "rates": {
            "listing_true_prob_mean": float(lt["true_prob"].mean()),
            "listing_violation_rate": float(lt["is_violation"].mean()),
            "listing_label_rate": float(lt["label"].mean()),
            "account_true_prob_mean": float(at["true_prob"].mean()),
            "account_violation_rate": float(at["is_violation"].mean()),
            "account_label_rate": float(at["label"].mean()),
        },
        "rings": {"count": int(acc.ring.max(initial=-1)) + 1, "members": int((acc.ring >= 0).sum())},
        "harm": _harm_summary(data),
        "missingness": missingness,
        "adversary": _adversary_summary(config, data),
        "truth_loaded": True,
        "config": config.model_dump(mode="json"),
    }


def _harm_summary(data: MarketplaceData) -> dict[str, Any]:
    """Per harm class of each truth table: violations, total harm and total money lost if all were missed."""
    summary: dict[str, Any] = {"risk_type_harm_class": dict(RISK_TYPE_HARM_CLASS)}
    for name, truth in (("listings", data.listing_truth), ("accounts", data.account_truth)):
        violations = truth[truth["is_violation"]]
        by_class = violations.groupby("harm_class", observed=True).agg(
            violations=("harm", "size"), harm=("harm", "sum"), loss_if_missed=("loss_if_missed", "sum")
        )
        summary[name] = {
            str(c): {"violations": int(r["violations"]), "harm": round(float(r["harm"]), 3),
                     "loss_if_missed": round(float(r["loss_if_missed"]), 2)}
            for c, r in by_class.iterrows()
        }
    return summary


def _missingness_summary(
    config: GeneratorConfig, source: IntArray, listing_missing: Masks, account_missing: Masks
) -> dict[str, Any]:
    """The observed missing rate of every optional field (per listing source), next to the configured rates
    that live under ``config.missingness``. Counted on the masks: the same nulls the frames carry."""
    names = tuple(config.missingness.listing_sources)
    per_source = np.bincount(source, minlength=len(names)).astype(np.float64)
    rates = {f: np.bincount(source, weights=m, minlength=len(names)) / np.maximum(per_source, 1)
             for f, m in sorted(listing_missing.items())}
    by_source = {
        name: {"share": round(float(per_source[i] / max(len(source), 1)), 4),
               "missing": {f: round(float(r[i]), 4) for f, r in rates.items()}}
        for i, name in enumerate(names)
    }
    return {
        "enabled": config.missingness.enabled,
        "listings_by_source": by_source,
        "accounts": {f: round(float(m.mean()), 4) for f, m in sorted(account_missing.items())},
    }


def _adversary_summary(config: GeneratorConfig, data: MarketplaceData) -> dict[str, Any]:
    cfg = config.adversary
    start = pd.Timestamp(config.start) + pd.Timedelta(days=cfg.start_day(config.days))
    adapted = {
        name: {str(k): int(v) for k, v in truth["evaded_tell"][truth["evaded_tell"] != ""].value_counts().items()}
        for name, truth in (("listings", data.listing_truth), ("accounts", data.account_truth))
    }
    return {"enabled": cfg.enabled, "wave_day": cfg.start_day(config.days), "start": start.isoformat(),
            "rows_adapted": adapted}
