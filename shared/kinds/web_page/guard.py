"""SSRF guard, pure part: which resolved addresses and host names a web.page fetch may reach."""

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALLOW_SETTING = "SLUICE_KINDS_WEB_ALLOW_NETWORKS"
METADATA_ADDRESSES = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})
METADATA_HOSTS = frozenset({"metadata.google.internal"})
SHARED_NETWORK = ipaddress.ip_network("100.64.0.0/10")


@dataclass(frozen=True)
class AllowList:
    """Networks and host names an operator lets fetches reach although they are not public."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> "AllowList":
        """Reads CIDRs, bare addresses and host names; raises ValueError for a malformed address entry."""
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for entry in (raw.strip() for raw in entries):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError as exc:
                if "/" in entry or ":" in entry or entry.replace(".", "").isdigit():
                    raise ValueError(f"{ALLOW_SETTING}: {entry!r} is not a valid network ({exc})") from exc
                hosts.add(normalize_host(entry))
        return cls(tuple(networks), frozenset(hosts))

    def permits_host(self, host: str) -> bool:
        return normalize_host(host) in self.hosts

    def permits_address(self, address: IPAddress) -> bool:
        if address in METADATA_ADDRESSES:
            # A broad range such as 169.254.0.0/16 must not open the metadata service by accident.
            return any(net.num_addresses == 1 and address in net for net in self.networks)
        return any(address in net for net in self.networks)


def normalize_host(host: str) -> str:
    return host.strip().rstrip(".").lower()


def addresses_to_judge(address: IPAddress) -> list[IPAddress]:
    """An IPv4-mapped IPv6 address is judged as its IPv4 address; a 6to4 one as both."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            return [address.ipv4_mapped]
        if address.sixtofour:
            return [address, address.sixtofour]
    return [address]


def address_category(address: IPAddress) -> str | None:
    """Why an address is not public ("a private address", ...), or None for a public one."""
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address in SHARED_NETWORK:
        return "a shared (carrier-grade NAT) address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "a non-public address"
    return None


def address_refusal(address: str | IPAddress, allow: AllowList) -> str | None:
    """The reason a fetch may not connect to this address, or None if it may."""
    original = ipaddress.ip_address(address) if isinstance(address, str) else address
    if allow.permits_address(original):
        return None
    for judged in addresses_to_judge(original):
        if allow.permits_address(judged):
            continue
        if category := address_category(judged):
            given = address if isinstance(address, str) else str(original)
            shown = given if judged == original else f"{given} (embedding {judged})"
            return f"{shown} is {category}"
    return None


def is_address_allowed(address: str | IPAddress, allow: AllowList) -> bool:
    return address_refusal(address, allow) is None


def host_refusal(host: str, allow: AllowList) -> str | None:
    """The reason a host name is refused before it is even resolved, or None."""
    if normalize_host(host) in METADATA_HOSTS and not allow.permits_host(host):
        return f"{normalize_host(host)} is a cloud metadata host"
    return None


def resolved_refusal(host: str, addresses: Iterable[str | IPAddress], allow: AllowList) -> str | None:
    """The first refusal among every address a host resolved to; a host allowed by name passes."""
    if allow.permits_host(host):
        return None
    if reason := host_refusal(host, allow):
        return reason
    for address in addresses:
        if reason := address_refusal(address, allow):
            return reason
    return None


def refusal_message(host: str, reason: str) -> str:
    """The failed item's reason: what was refused, for which host, and how to allow it."""
    return f"refused: {reason} (host {host}); allow it with {ALLOW_SETTING}"
