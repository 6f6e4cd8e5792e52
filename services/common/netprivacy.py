"""Shortening IP addresses before they are stored (R33: usage logs keep IPs shortened)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address, ip_network

__all__ = ["shorten_ip"]


def shorten_ip(ip: IPv4Address | IPv6Address | None) -> str | None:
    """The network, not the host: /24 for IPv4, /48 for IPv6."""
    if ip is None:
        return None
    prefix = 24 if isinstance(ip, IPv4Address) else 48
    return str(ip_network(f"{ip}/{prefix}", strict=False))
