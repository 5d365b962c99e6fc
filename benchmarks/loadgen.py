"""A small closed-loop HTTP/1.1 load generator on asyncio streams, loopback only.

Each of `concurrency` connections sends pre-encoded requests back to back over keep-alive and times each
round trip. Raw streams rather than an HTTP client library: on a 2-core machine the client shares the CPU
with the server, and a lean client (~20 µs per request) disturbs the server far less than httpx (~0.3 ms).
Every response is checked for status 200; anything else, a timeout or a dropped connection is an error.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import numpy as np

from benchmarks.common import Percentiles


@dataclass(frozen=True)
class LoadResult:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    latency: Percentiles
    records_per_request: int

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else float("nan")

    @property
    def records_per_second(self) -> float:
        """Records of the requests answered 200 only."""
        answered = max(0, self.requests - self.errors)
        return answered * self.records_per_request / self.seconds if self.seconds > 0 else float("nan")


def encode_post(host: str, port: int, path: str, bodies: Sequence[bytes]) -> list[bytes]:
    return [
        (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
         f"Content-Length: {len(body)}\r\nConnection: keep-alive\r\n\r\n").encode() + body
        for body in bodies
    ]


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    if "content-length" in headers:
        await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


async def _connection(host: str, port: int, requests: Sequence[bytes], offset: int, stop_at: float,
                      budget: list[int], latencies: list[float], errors: list[int], timeout: float,
                      reconnect: bool, connect_delay: float) -> None:
    if connect_delay:
        await asyncio.sleep(connect_delay)
    reader, writer = await asyncio.open_connection(host, port)
    i = offset
    try:
        while budget[0] > 0 and time.perf_counter() < stop_at:
            budget[0] -= 1
            if reconnect and i != offset:
                # a new connection is accepted by whichever server worker is free, as a pooled client's
                # connections spread over workers; the connect itself is not timed
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
            start = time.perf_counter()
            try:
                writer.write(requests[i % len(requests)])
                await writer.drain()
                status = await asyncio.wait_for(_read_response(reader), timeout)
            except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                errors[0] += 1
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                continue
            latencies.append(time.perf_counter() - start)
            if status != 200:
                errors[0] += 1
            i += 1
    finally:
        writer.close()


async def _run(url: str, path: str, bodies: Sequence[bytes], concurrency: int, max_requests: int,
               max_seconds: float, timeout: float, reconnect: bool = False,
               connect_stagger_s: float = 0.0) -> tuple[list[float], int, float]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", int(parts.port or 80)
    if host not in ("127.0.0.1", "localhost"):
        raise ValueError("the load generator is for loopback only")
    requests = encode_post(host, port, path, bodies)
    latencies: list[float] = []
    errors = [0]
    budget = [max_requests]
    start = time.perf_counter()
    stop_at = start + max_seconds
    await asyncio.gather(*(
        _connection(host, port, requests, k * 7919, stop_at, budget, latencies, errors, timeout, reconnect,
                    k * connect_stagger_s)
        for k in range(concurrency)
    ))
    return latencies, errors[0], time.perf_counter() - start


def run_load(url: str, path: str, bodies: Sequence[bytes], concurrency: int, max_requests: int, max_seconds: float,
             warmup_requests: int = 50, records_per_request: int = 1, timeout: float = 30.0,
             reconnect: bool = False, connect_stagger_s: float = 0.0) -> LoadResult:
    """Warm up, then send up to `max_requests` within `max_seconds` from `concurrency` connections (a new
    connection for every request if `reconnect`; connection k opened k × `connect_stagger_s` after the first).

    Why stagger: server workers sharing one listening socket race to accept, and a worker that wakes first
    accepts a whole burst of simultaneous connects, so 16 connections opened at once often all land on one of
    two workers (measured: one worker ~1,100 CPU ticks, the other ~25). A pool that opens connections as
    demand grows spreads them; the benchmark reports how the CPU was shared either way."""
    if warmup_requests:
        asyncio.run(_run(url, path, bodies, concurrency, warmup_requests, max_seconds, timeout, reconnect,
                         connect_stagger_s))
    # the client's own garbage collection must not show up as server latency
    gc.collect()
    gc.freeze()
    try:
        latencies, errors, seconds = asyncio.run(
            _run(url, path, bodies, concurrency, max_requests, max_seconds, timeout, reconnect, connect_stagger_s))
    finally:
        gc.unfreeze()
    return LoadResult(concurrency, len(latencies), errors, seconds, Percentiles.of(np.asarray(latencies)),
                      records_per_request)
