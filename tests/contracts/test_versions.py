"""A contract (an event's JSON schema, a REST operation) cannot change unless its version changes too.

On a failure: if the change is compatible by intent, it still changes what consumers see, so bump the
event's ``schema_version`` (or intake's API version), then record it with
`python -m tests.contracts.fingerprints --write`.
"""

import pytest

from tests.contracts.fingerprints import current, recorded

CURRENT = current()
RECORDED = recorded()
HOW = "bump its version, then run `python -m tests.contracts.fingerprints --write`"


@pytest.mark.parametrize("name", sorted(CURRENT))
def test_a_contract_changes_only_with_its_version(name):
    now = CURRENT[name]
    before = RECORDED.get(name)
    assert before is not None, f"{name} is new: record it with `python -m tests.contracts.fingerprints --write`"
    if now["version"] == before["version"]:
        assert now["sha256"] == before["sha256"], f"{name} changed under version {now['version']}: {HOW}"
    else:
        pytest.fail(f"{name} moved to version {now['version']}: record it ({HOW.split(', then ')[1]})")


def test_no_contract_is_removed_without_a_version_change():
    current_versions = {(key.split(":")[0], fingerprint["version"]) for key, fingerprint in CURRENT.items()}
    removed = [
        name
        for name in set(RECORDED) - set(CURRENT)
        if (name.split(":")[0], RECORDED[name]["version"]) in current_versions
    ]
    assert not removed, f"{sorted(removed)} removed without a version change: {HOW}"
