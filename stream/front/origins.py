"""Where a request comes from: which web pages may act on the stream (the Origin check shared
by HTTP and the websocket), and which address a viewer is counted as (behind a trusted proxy).

Browsers send `Origin` with every cross-site POST and websocket; scripts, `curl` and chat
bridges send none and are not a cross-site risk, so no Origin is allowed. A browser's Origin
must be this page's own (any name the server answers to, on the HTTP port), or one listed in
`serve.allowed_origins` ("*" allows any). Without this, any page a viewer opened could queue
dreams through the viewer's browser.
"""
from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from ..config import ServeSettings

LOOPBACK = {"localhost", "127.0.0.1", "::1"}


def _hostname(host_header: str) -> str:
    return (urlsplit(f"//{host_header}").hostname or "") if host_header else ""


def origin_allowed(origin: str | None, host_header: str, s: ServeSettings) -> bool:
    """`host_header` is the request's Host (the name the client used to reach us)."""
    if origin is None or "*" in s.allowed_origins or origin in s.allowed_origins:
        return True
    try:
        u = urlsplit(origin)
        port = u.port or {"http": 80, "https": 443}.get(u.scheme)
    except ValueError:  # "null", garbage, a port out of range
        return False
    if u.scheme not in ("http", "https") or not u.hostname:
        return False
    if u.netloc == host_header:  # same origin over HTTP (also behind a reverse proxy)
        return True
    return u.hostname in LOOPBACK | {s.host, _hostname(host_header)} and port == s.port


def _trusted(address: str, proxies: list[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
        return any(ip in ipaddress.ip_network(p, strict=False) for p in proxies)
    except ValueError:
        return False


def client_address(remote: str | None, forwarded_for: str | None, proxies: list[str]) -> str:
    """The viewer's address for rate limits: the peer itself, or, when the peer is one of our
    own reverse proxies (`serve.trusted_proxies`), the nearest address before it in
    X-Forwarded-For that is not one of them. Everyone else's X-Forwarded-For is ignored (a
    viewer could write anything there). Never shown to anyone."""
    address = remote or "unknown"
    if not forwarded_for or not _trusted(address, proxies):
        return address
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        if not _trusted(hop, proxies):
            return hop[:64]
    return address
