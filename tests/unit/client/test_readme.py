"""client/README.md's examples run as written against a real local server, and the two clients stay in step."""

import inspect
import re
import uuid
from pathlib import Path

import pytest

from sluice.client import AsyncSluiceClient, SluiceClient
from tests.unit.client.scripted_intake import Reply, ScriptedIntake, Seen, job_view, sse

README = Path(__file__).resolve().parents[3] / "client" / "README.md"
EXAMPLE = re.compile(r"```python\n(.*?)```", re.DOTALL)
JOB = str(uuid.uuid4())
LETTER = {
    "id": 7, "topic": "t.tasks.dlq", "partition": 0, "offset": 3, "job_id": JOB, "item_index": 1,
    "reason": "gone", "recorded_at": "2026-01-01T00:00:00+00:00", "payload": {"items": []},
}  # fmt: skip


def _intake(seen: Seen) -> Reply:
    """What intake answers to each call the examples make."""
    accepted = {"job_id": JOB, "status_url": "s", "results_url": "r", "total_items": 1, "total_batches": 1}
    answers = {
        ("POST", "/v1/jobs"): Reply(202, accepted),
        ("GET", f"/v1/jobs/{JOB}/events"): Reply(events=[sse("status", job_view(JOB, "completed", 4))]),
        ("GET", f"/v1/jobs/{JOB}"): Reply(json=job_view(JOB, "completed", 4)),
        ("GET", f"/v1/jobs/{JOB}/results"): Reply(json={"job_id": JOB, "items": [], "limit": 1000}),
        ("GET", "/v1/jobs"): Reply(json={"jobs": [job_view(JOB, "failed", 4)], "next_cursor": None}),
        ("GET", "/v1/admin/dlq"): Reply(json={"dead_letters": [LETTER], "next_cursor": None}),
        ("GET", "/v1/admin/dlq/7"): Reply(json=LETTER),
        ("POST", "/v1/admin/dlq/redrive"): Reply(json={"redriven": 1}),
    }
    return answers.get((seen.method, seen.path), Reply(404, {"error": {"code": "not_found", "message": seen.path}}))


def test_every_python_example_of_the_readme_runs_against_intake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    examples = EXAMPLE.findall(README.read_text(encoding="utf-8"))
    (tmp_path / "urls.csv").write_text("url\nhttps://example.com/\n")
    monkeypatch.chdir(tmp_path)
    with ScriptedIntake(_intake).running() as intake:
        for example in examples:
            exec(compile(example.replace("http://127.0.0.1:8000", intake.url), str(README), "exec"), {})
        called = {(seen.method, seen.path) for seen in intake.seen}

    assert len(examples) == 3
    assert ("POST", "/v1/admin/dlq/redrive") in called and ("GET", f"/v1/jobs/{JOB}/events") in called
    assert "redriven: 1" in capsys.readouterr().out


def _signature(method: object) -> list[tuple[str, object, object]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(method).parameters.values()]  # type: ignore[arg-type]


def test_the_sync_and_the_async_client_offer_the_same_operations_with_the_same_parameters() -> None:
    def public(cls: type) -> dict[str, object]:
        return {name: member for name, member in vars(cls).items() if not name.startswith("_") and callable(member)}

    sync, aio = public(SluiceClient), public(AsyncSluiceClient)
    sync.pop("close"), aio.pop("aclose")

    assert sorted(sync) == sorted(aio)
    assert {name: _signature(sync[name]) for name in sync} == {name: _signature(aio[name]) for name in aio}
    assert _signature(SluiceClient.__init__) == _signature(AsyncSluiceClient.__init__)
