"""Is a request cross-site? Decided from what the browser says, for requests that carry a browser sign-in.

A browser that signed in to the reviewer page with Basic credentials (the key as the password) sends them on
every later request to this origin, including requests other sites make it send: an HTML form or a
`fetch(..., {mode: "no-cors", credentials: "include"})` POST from another origin needs no CORS preflight. So
state-changing requests with Basic credentials must come from this origin. Browsers say where a request comes
from in headers page scripts cannot set:

- `Sec-Fetch-Site` (all current browsers): `same-origin` or `none` (typed by the user) is this origin;
  `same-site` (another port or subdomain) and `cross-site` are not;
- `Origin` (sent on every cross-origin request and on same-origin POSTs): its host and port must be the ones
  the request was addressed to (`Host`), or listed as trusted (a proxy that rewrites `Host`); `null`
  (sandboxed frames, privacy redirects) is never same-origin.

A request with neither header did not come from a current browser (curl, scripts): it is not cross-site.
API clients using `Authorization: Bearer` or `X-API-Key` are not affected: a browser cannot attach those to
a cross-site request without a CORS preflight, which this service never grants.
"""

from __future__ import annotations

from collections.abc import Collection
from urllib.parse import urlsplit

from starlette.types import Scope

from serving.asgi import header_of

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SAME_ORIGIN_FETCH_SITES = frozenset({"same-origin", "none"})
DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise_origin(origin: str) -> str | None:
    """`HTTPS://Example.org:443` -> `https://example.org`; None when it is not a scheme://host[:port] origin."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.path not in ("", "/"):
        return None
    host = parts.hostname.lower()
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{port}" if port and port != DEFAULT_PORTS[parts.scheme] else "")


def _authority(origin: str) -> str:
    return origin.split("://", 1)[1]


def _addressed_authority(scope: Scope, scheme: str) -> str | None:
    """host[:port] the request was sent to, without the scheme's default port (as in an origin)."""
    host = header_of(scope, b"host")
    if host is None:
        server = scope.get("server")
        if not server:
            return None
        host = f"{server[0]}:{server[1]}"
    normalised = normalise_origin(f"{scheme}://{host}")
    return _authority(normalised) if normalised else None


def cross_site_reason(scope: Scope, trusted_origins: Collection[str] = ()) -> str | None:
    """Why this request is cross-site (a short reason for the 403), or None when it is not (see the module
    docstring). ``trusted_origins`` are normalised origins (``normalise_origin``) always accepted."""
    origin_header = header_of(scope, b"origin")
    origin = normalise_origin(origin_header) if origin_header else None
    if origin is not None and origin in trusted_origins:
        return None
    fetch_site = header_of(scope, b"sec-fetch-site")
    if fetch_site is not None:
        if fetch_site.lower() in SAME_ORIGIN_FETCH_SITES:
            return None
        return f"Sec-Fetch-Site is {fetch_site[:20]}"
    if origin_header is None:
        return None
    if origin is None:
        return "Origin is not this service"  # `null`, or not an origin at all
    if _addressed_authority(scope, origin.split("://", 1)[0]) != _authority(origin):
        return "Origin is not this service"
    return None


def is_state_changing(scope: Scope) -> bool:
    return str(scope.get("method", "GET")).upper() not in SAFE_METHODS
