"""Fingerprints of every contract: each event model's JSON schema under its schema_version, and each REST
operation of intake's OpenAPI under the API version. `python -m tests.contracts.fingerprints --write`
records the current ones in snapshots.json (do it together with the version bump)."""

import hashlib
import json
import sys
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel

from services.intake.app import build_app
from services.intake.settings import IntakeSettings
from sluice.contracts.events import AnyEvent

SNAPSHOTS = Path(__file__).with_name("snapshots.json")


PROSE = frozenset({"description", "summary"})
"""Keys that only explain: a reworded docstring changes no contract, so they are left out of the digest."""


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(_shape(value), sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _shape(value: Any) -> Any:
    """The value without its prose, at every depth (a field that is itself named "description" is kept)."""
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items() if not (key in PROSE and isinstance(item, str))}
    if isinstance(value, list):
        return [_shape(item) for item in value]
    return value


def event_models() -> list[type[BaseModel]]:
    return list(get_args(get_args(AnyEvent)[0]))


def _inline(value: Any, components: dict[str, Any], seen: frozenset[str] = frozenset()) -> Any:
    """The value with every "$ref" to a component schema replaced by the schema itself (recursion cut)."""
    if isinstance(value, dict):
        ref = value.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            name = ref.rsplit("/", 1)[1]
            return {"$recursive": name} if name in seen else _inline(components[name], components, seen | {name})
        return {key: _inline(item, components, seen) for key, item in value.items()}
    if isinstance(value, list):
        return [_inline(item, components, seen) for item in value]
    return value


def current() -> dict[str, dict[str, Any]]:
    fingerprints: dict[str, dict[str, Any]] = {}
    for model in event_models():
        version = model.model_fields["schema_version"].default
        fingerprints[f"event:{model.__name__}"] = {"version": version, "sha256": _digest(model.model_json_schema())}
    app = build_app(IntakeSettings())
    spec = app.openapi()
    components = spec.get("components", {}).get("schemas", {})
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            body = _inline(operation, components)
            fingerprints[f"rest:{method.upper()} {path}"] = {"version": app.version, "sha256": _digest(body)}
    return fingerprints


def recorded() -> dict[str, dict[str, Any]]:
    return json.loads(SNAPSHOTS.read_text(encoding="utf-8"))


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m tests.contracts.fingerprints --write")
    SNAPSHOTS.write_text(json.dumps(current(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
