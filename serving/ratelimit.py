"""Failed authentications, limited per client network and per presented key id, in bounded memory.

Each name (a client network, a key id) has one number: the generic cell rate algorithm's theoretical arrival
time. A failure costs ``window_s / max_failures`` seconds of credit, so a name may fail ``max_failures`` times
in a burst, then once every ``window_s / max_failures`` seconds; after ``window_s`` seconds without failures
it is back to a full budget. At most ``max_names`` names are tracked; past that the name that failed least
recently is forgotten (a forgotten name starts with a full budget again, so an attacker flooding names only
frees other names' budgets, never blocks anyone).

pyrate-limiter (in the dev pins, under schemathesis) keeps a bucket per name with no bound on the number of
names and a leak thread; this is one float per name and no thread, touched only from the event loop.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable

DEFAULT_MAX_FAILURES = 10
DEFAULT_WINDOW_S = 60.0
DEFAULT_MAX_NAMES = 10_000
IPV6_NETWORK_PREFIX = 64  # one subscriber usually holds a whole /64: counting addresses would not limit them


class FailureLimiter:
    def __init__(
        self,
        *,
        max_failures: int = DEFAULT_MAX_FAILURES,
        window_s: float = DEFAULT_WINDOW_S,
        max_names: int = DEFAULT_MAX_NAMES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_failures < 1 or not window_s > 0 or max_names < 1:
            raise ValueError("max_failures and max_names must be at least 1 and window_s positive")
        self.max_failures = max_failures
        self.window_s = window_s
        self._interval = window_s / max_failures
        self._max_names = max_names
        self._clock = clock
        self._arrival: OrderedDict[str, float] = OrderedDict()

    def retry_after(self, *names: str) -> float:
        """Seconds until every one of ``names`` may fail again (0: none is limited now)."""
        now = self._clock()
        slack = self.window_s - self._interval  # how far ahead of now the arrival time may be: max_failures - 1
        return max([0.0, *(self._arrival.get(name, now) - now - slack for name in names)])

    def limited(self, *names: str) -> bool:
        return self.retry_after(*names) > 1e-9

    def failed(self, *names: str) -> list[str]:
        """Count one failure against each name; returns the names this failure used up (now limited)."""
        now = self._clock()
        exhausted = []
        for name in names:
            arrival = max(self._arrival.pop(name, now), now) + self._interval
            self._arrival[name] = arrival  # re-inserted last: the dict is ordered by last failure
            if arrival - now > self.window_s - self._interval + 1e-9:
                exhausted.append(name)
        while len(self._arrival) > self._max_names:
            self._arrival.popitem(last=False)
        return exhausted

    def __len__(self) -> int:
        return len(self._arrival)


def client_network(scope_client: tuple[str, int] | list[object] | None) -> str:
    """The name a client address is counted under: the IPv4 address, or the IPv6 /64 network."""
    host = str(scope_client[0]) if scope_client else "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return f"addr:{host[:64]}"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return f"addr:{address.ipv4_mapped}"
        return f"addr:{ipaddress.IPv6Network((address, IPV6_NETWORK_PREFIX), strict=False)}"
    return f"addr:{address}"


def retry_after_header(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
