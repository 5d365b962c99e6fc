"""Vectorised string building: ids, opaque hashes and Arrow-backed text columns."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

IntArray = npt.NDArray[np.int64]
UInt64Array = npt.NDArray[np.uint64]

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_MASK64 = (1 << 64) - 1


def splitmix64(values: npt.NDArray[np.integer], salt: int) -> UInt64Array:
    """A stateless 64-bit mix, so equal inputs (and salt) always give the same opaque value."""
    with np.errstate(over="ignore"):
        z = values.astype(np.uint64) + np.uint64((salt * 0x9E3779B97F4A7C15) & _MASK64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def hex16(values: UInt64Array) -> pa.Array:
    """Fixed-width lower-case hex of 64-bit values, built nibble-wise without a Python loop."""
    shifts = np.arange(60, -4, -4, dtype=np.uint64)
    nibbles = ((values[:, None] >> shifts[None, :]) & np.uint64(15)).astype(np.intp)
    chars = np.ascontiguousarray(_HEX[nibbles])
    return _fixed_width_to_arrow(chars)


def padded_ids(prefix: str, n: int, width: int) -> pa.Array:
    """``prefix`` followed by the zero-padded row number (0..n-1)."""
    width = max(width, len(str(max(n - 1, 0))))
    numbers = np.arange(n, dtype=np.int64)
    powers = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    digits = (numbers[:, None] // powers[None, :]) % 10
    prefix_bytes = np.frombuffer(prefix.encode("ascii"), dtype=np.uint8)
    chars = np.empty((n, len(prefix_bytes) + width), dtype=np.uint8)
    chars[:, : len(prefix_bytes)] = prefix_bytes
    chars[:, len(prefix_bytes) :] = (digits + ord("0")).astype(np.uint8)
    return _fixed_width_to_arrow(chars)


def _fixed_width_to_arrow(chars: npt.NDArray[np.uint8]) -> pa.Array:
    n, width = chars.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(chars.tobytes()))


def take(words: Sequence[str], codes: npt.NDArray[np.integer]) -> pa.Array:
    """Look up ``codes`` in a small vocabulary."""
    return pa.array(list(words), type=pa.string()).take(pa.array(np.asarray(codes, dtype=np.int64)))


def join(parts: Sequence[pa.Array | str]) -> pa.Array:
    """Row-wise concatenation of Arrow string arrays and literal strings."""
    return pc.binary_join_element_wise(*parts, "")


def as_str_series(values: pa.Array | pa.ChunkedArray) -> pd.Series:
    """An Arrow string array as a pandas ``str`` column (no copy through Python objects)."""
    return pd.Series(pd.array(values, dtype="str"))


def str_series(words: Sequence[str], codes: npt.NDArray[np.integer]) -> pd.Series:
    return as_str_series(take(words, codes))


def null_where(values: pa.Array, missing: npt.NDArray[np.bool_]) -> pa.Array:
    """``values`` with nulls where ``missing`` is True.

    A string array without nulls gets a validity bitmap over its own offsets and characters (no copy of the
    text, unlike a row-wise ``if_else``); anything else goes through ``if_else``."""
    if isinstance(values, pa.StringArray) and values.null_count == 0 and values.offset == 0:
        validity = pa.py_buffer(np.packbits(~missing, bitorder="little"))
        _, offsets, data = values.buffers()
        return pa.Array.from_buffers(pa.string(), len(values), [validity, offsets, data],
                                     null_count=int(missing.sum()))
    return pc.if_else(pa.array(missing), pa.scalar(None, values.type), values)
