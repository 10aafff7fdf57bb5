"""Where an outgoing webhook may go. A registered URL is a request the service will make from
inside its network (SSRF): loopback, private, link-local (cloud metadata at 169.254.169.254),
shared, reserved and multicast addresses are refused, at registration and again at every
delivery after resolving the name, and the request then goes to exactly the address checked
(a name that resolves elsewhere the second time, DNS rebinding, cannot slip past).
`allow_private` (OUTGOING_WEBHOOKS_ALLOW_PRIVATE) lifts the address rule for development and tests."""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_URL = 2000


class Refused(ValueError):
    """The URL may not be called; the message says why (safe to show the tenant)."""


class Unresolved(Refused):
    """The name does not resolve (now): not callable now, but not known to be forbidden either."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str          # the name, for Host and TLS
    port: int
    path: str          # path and query
    address: str       # the checked IP the request goes to


def parse(url: str) -> tuple[str, str, int, str]:
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        raise Refused(f"url must be an http(s) URL of at most {MAX_URL} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise Refused("url is not a valid URL") from exc
    if parts.scheme not in ("http", "https"):
        raise Refused("url must use http or https")
    if not parts.hostname:
        raise Refused("url must name a host")
    if parts.username or parts.password:
        raise Refused("url must not carry credentials")
    if parts.fragment:
        raise Refused("url must not have a fragment")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80), path


def forbidden(ip: ipaddress._BaseAddress) -> str | None:
    """Why this address may not be called, or None."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local (cloud metadata)"
    if ip.is_private:
        return "private"
    if ip.is_multicast or ip.is_reserved or ip.is_unspecified or not ip.is_global:
        return "not a public address"
    return None


def resolve(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Unresolved(f"url host {host!r} does not resolve") from exc
    return list(dict.fromkeys(info[4][0] for info in infos))


def check(url: str, *, allow_private: bool, resolver=resolve) -> Target:
    """The target to call, or Refused. Every address the name resolves to must be allowed."""
    scheme, host, port, path = parse(url)
    try:
        literal = ipaddress.ip_address(host)
        addresses = [str(literal)]
    except ValueError:
        addresses = resolver(host, port)
    if not addresses:
        raise Unresolved(f"url host {host!r} does not resolve")
    if not allow_private:
        for a in addresses:
            why = forbidden(ipaddress.ip_address(a.split("%")[0]))
            if why:
                raise Refused(f"url resolves to a {why} address, which webhooks may not call")
    return Target(scheme, host, port, path, addresses[0])
