import ipaddress

import pytest

from shared.kinds.web_page.guard import (
    ALLOW_SETTING,
    AllowList,
    address_refusal,
    host_refusal,
    is_address_allowed,
    refusal_message,
    resolved_refusal,
)

NOTHING_ALLOWED = AllowList()


@pytest.mark.parametrize(
    ("address", "category"),
    [
        ("10.0.0.5", "a private address"),
        ("172.16.3.4", "a private address"),
        ("192.168.1.20", "a private address"),
        ("fd12:3456::1", "a private address"),
        ("127.0.0.1", "a loopback address"),
        ("127.255.0.9", "a loopback address"),
        ("::1", "a loopback address"),
        ("169.254.10.1", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("fe80::1%eth0", "a link-local address"),
        ("224.0.0.251", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("0.0.0.0", "an unspecified address"),
        ("::", "an unspecified address"),
        ("100.64.0.1", "a shared (carrier-grade NAT) address"),
        ("100.127.255.254", "a shared (carrier-grade NAT) address"),
        ("240.0.0.1", "a reserved address"),
        ("255.255.255.255", "a reserved address"),
        ("192.0.2.10", "a private address"),  # documentation range, never a real server
        ("169.254.169.254", "a cloud metadata address"),
        ("fd00:ec2::254", "a cloud metadata address"),
    ],
)
def test_non_public_addresses_are_refused_with_their_category(address, category):
    assert address_refusal(address, NOTHING_ALLOWED) == f"{address} is {category}"
    assert not is_address_allowed(address, NOTHING_ALLOWED)


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("::ffff:10.0.0.1", "::ffff:10.0.0.1 (embedding 10.0.0.1) is a private address"),
        ("::ffff:127.0.0.1", "::ffff:127.0.0.1 (embedding 127.0.0.1) is a loopback address"),
        (
            "::ffff:169.254.169.254",
            "::ffff:169.254.169.254 (embedding 169.254.169.254) is a cloud metadata address",
        ),
        ("2002:a00:1::1", "2002:a00:1::1 (embedding 10.0.0.1) is a private address"),  # 6to4
    ],
)
def test_ipv6_addresses_embedding_an_ipv4_address_are_judged_by_it(address, reason):
    assert address_refusal(address, NOTHING_ALLOWED) == reason


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_are_allowed(address):
    assert address_refusal(address, NOTHING_ALLOWED) is None
    assert is_address_allowed(ipaddress.ip_address(address), NOTHING_ALLOWED)


def test_an_allowlisted_network_opens_the_addresses_inside_it_only():
    allow = AllowList.parse(["10.0.0.0/8", "127.0.0.0/8"])
    assert is_address_allowed("10.200.3.4", allow)
    assert is_address_allowed("127.0.0.1", allow)
    assert is_address_allowed("::ffff:127.0.0.1", allow)
    assert not is_address_allowed("192.168.1.1", allow)
    assert not is_address_allowed("::1", allow)


def test_a_bare_address_in_the_allowlist_opens_that_address():
    allow = AllowList.parse(["192.168.1.20", "::1"])
    assert is_address_allowed("192.168.1.20", allow)
    assert is_address_allowed("::1", allow)
    assert not is_address_allowed("192.168.1.21", allow)


def test_a_broad_allowlisted_range_does_not_open_the_metadata_service():
    broad = AllowList.parse(["169.254.0.0/16", "fd00::/8"])
    assert is_address_allowed("169.254.10.1", broad)
    assert address_refusal("169.254.169.254", broad) == "169.254.169.254 is a cloud metadata address"
    assert not is_address_allowed("fd00:ec2::254", broad)


def test_the_metadata_address_is_opened_only_when_named_exactly():
    assert is_address_allowed("169.254.169.254", AllowList.parse(["169.254.169.254/32"]))
    assert is_address_allowed("fd00:ec2::254", AllowList.parse(["fd00:ec2::254"]))


def test_allowlist_entries_are_parsed_into_networks_and_normalized_host_names():
    allow = AllowList.parse([" 10.0.0.0/8 ", "", "Intranet.Example.", "10.1.2.3/24"])
    assert allow.networks == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("10.1.2.0/24"))
    assert allow.hosts == frozenset({"intranet.example"})
    assert allow.permits_host("INTRANET.example")


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "10.0.0.300", "fe80::zz", "not a host/8"])
def test_a_malformed_network_in_the_allowlist_is_an_error_naming_the_setting(entry):
    with pytest.raises(ValueError) as raised:
        AllowList.parse([entry])
    assert ALLOW_SETTING in str(raised.value)
    assert repr(entry) in str(raised.value)


def test_the_metadata_host_name_is_refused_before_resolution_unless_allowlisted_by_name():
    assert host_refusal("Metadata.Google.Internal.", NOTHING_ALLOWED) == (
        "metadata.google.internal is a cloud metadata host"
    )
    assert host_refusal("metadata.google.internal", AllowList.parse(["metadata.google.internal"])) is None
    assert host_refusal("example.com", NOTHING_ALLOWED) is None


def test_a_host_is_refused_if_any_of_its_addresses_is_refused():
    reason = resolved_refusal("mixed.example", ["93.184.216.34", "10.0.0.5"], NOTHING_ALLOWED)
    assert reason == "10.0.0.5 is a private address"


def test_a_host_whose_addresses_are_all_public_is_allowed():
    assert resolved_refusal("example.com", ["93.184.216.34", "2606:2800:220:1::1"], NOTHING_ALLOWED) is None


def test_a_host_allowlisted_by_name_may_resolve_to_private_addresses():
    allow = AllowList.parse(["intranet.example"])
    assert resolved_refusal("intranet.example", ["10.0.0.5", "fd00::5"], allow) is None
    assert resolved_refusal("other.example", ["10.0.0.5"], allow) == "10.0.0.5 is a private address"


def test_a_resolved_metadata_host_name_is_refused_even_with_public_addresses():
    reason = resolved_refusal("metadata.google.internal", ["8.8.8.8"], NOTHING_ALLOWED)
    assert reason == "metadata.google.internal is a cloud metadata host"


def test_the_refusal_message_names_the_host_and_how_to_allow_it():
    message = refusal_message("example.internal", "10.0.0.5 is a private address")
    assert message == (
        "refused: 10.0.0.5 is a private address (host example.internal); allow it with SLUICE_KINDS_WEB_ALLOW_NETWORKS"
    )
