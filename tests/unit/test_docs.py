"""The README stays a front page, its links lead somewhere, and the Kafka contracts page matches the models.

`mkdocs build --strict` checks the links inside docs/; these check what it cannot see.
"""

import json
import re
from pathlib import Path
from typing import get_args

import pytest
from pydantic import BaseModel

from sluice.contracts import events

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS_PAGE = ROOT / "docs" / "kafka-contracts.md"
LINK = re.compile(r"\]\(([^)\s]+)\)")
CELL_SEPARATOR = re.compile(r"(?<!\\)\|")
FENCE = re.compile(r"```json\n(.*?)\n```", re.DOTALL)


def _message_models() -> set[type[BaseModel]]:
    union = get_args(events.AnyEvent)[0]
    return set(get_args(union))


def _sections(text: str) -> dict[str, str]:
    """Each heading's text (without the #s) → the text up to the next heading of any level."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("#"):
            current = sections.setdefault(line.lstrip("#").strip(), [])
            continue
        if current is not None:
            current.append(line)
    return {name: "\n".join(lines) for name, lines in sections.items()}


def _model_sections() -> dict[str, str]:
    return {
        name: body
        for name, body in _sections(CONTRACTS_PAGE.read_text(encoding="utf-8")).items()
        if isinstance(getattr(events, name, None), type) and issubclass(getattr(events, name), BaseModel)
    }


def test_readme_stays_a_front_page():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines; move detail into docs/"


def test_readmes_name_the_command_ci_runs():
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in (ROOT / "README.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("readme", ["README.md", "client/README.md"])
def test_relative_links_in_readmes_lead_to_files(readme):
    path = ROOT / readme
    targets = [t for t in LINK.findall(path.read_text(encoding="utf-8")) if "://" not in t and not t.startswith("#")]
    missing = [t for t in targets if not (path.parent / t.split("#", 1)[0]).exists()]
    assert missing == []


def test_every_message_type_has_a_section_on_the_contracts_page():
    documented = set(_model_sections())
    assert {model.__name__ for model in _message_models()} - documented == set()


def test_every_json_example_is_valid_for_its_model():
    checked = 0
    for name, body in _model_sections().items():
        model = getattr(events, name)
        for example in FENCE.findall(body):
            model.model_validate_json(example)
            json.loads(example)
            checked += 1
    assert checked >= len(_message_models())


def test_field_tables_list_every_field_and_which_are_required():
    for name, body in _model_sections().items():
        model = getattr(events, name)
        rows = [CELL_SEPARATOR.split(line)[1:-1] for line in body.splitlines() if line.startswith("| `")]
        table = {cells[0].strip().strip("`"): cells[2].strip() == "**yes**" for cells in rows}
        expected = {field: info.is_required() for field, info in model.model_fields.items()}
        assert table == expected, name
