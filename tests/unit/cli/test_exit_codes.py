"""The `sluice` command's exit codes and output, against a real local server: one code per kind of outcome, a
progress bar only on a terminal, Ctrl-C as 130 without a traceback."""

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import uuid
from importlib.metadata import version

import pytest

from sluice.cli import exits
from sluice.cli.__main__ import main
from sluice.cli.common import KafkaTrouble, UsageError
from sluice.cli.watching import Display
from sluice.client import (
    ApiError,
    IntakeUnreachable,
    JobView,
    NotAuthorized,
    NotFound,
    RateLimited,
    ServiceUnavailable,
    WaitTimedOut,
)
from sluice.errors import SluiceError
from tests.support.poll import eventually
from tests.unit.client.scripted_intake import Reply, ScriptedIntake, Seen, job_view, live_event, sse

JOB = str(uuid.uuid4())


@pytest.fixture(autouse=True)
def no_config_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLUICE_CONFIG", "/nonexistent/sluice.toml")
    for name in ("SLUICE_URL", "SLUICE_API_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (WaitTimedOut(JOB, 5, "running"), 5),
        (IntakeUnreachable("http://x", "refused"), 3),
        (ServiceUnavailable(503, "unavailable", "kafka down"), 3),
        (RateLimited(429, "rate_limited", "slow down"), 3),
        (KafkaTrouble("cannot reach Kafka"), 3),
        (NotFound(404, "not_found", "no such job"), 4),
        (NotAuthorized(401, "unauthenticated", "bad key"), 4),
        (ApiError(422, "invalid_request", "unknown kind"), 2),
        (ApiError(413, "limit_exceeded", "too many items"), 2),
        (UsageError("cannot read items.csv"), 2),
        (ApiError(500, "error", "boom"), 3),
        (SluiceError("an operator command's own refusal"), 2),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
def test_each_kind_of_failure_has_its_exit_code(error: Exception, code: int) -> None:
    assert exits.exit_code(error) == code


def test_the_exit_code_table_is_in_the_top_level_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out

    assert "exit codes:" in out
    assert all(f"\n  {code} " in out for code in (0, 1, 2, 3, 4, 5, 130))


def test_version_names_the_client_and_the_server_installed_beside_it(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])

    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == (
        f"sluice-client {version('sluice-client')}, sluice-server {version('sluice-server')}"
    )


def _error(status: int, code: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"error": {"code": code, "message": f"the {code} answer", "field": None}}, headers or {})


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        (_error(404, "not_found"), 4),
        (_error(401, "unauthenticated"), 4),
        (_error(503, "unavailable", {"Retry-After": "0"}), 3),
        (_error(429, "rate_limited", {"Retry-After": "0"}), 3),
        (_error(400, "invalid_request"), 2),
    ],
    ids=["404", "401", "503", "429", "400"],
)
def test_intakes_answer_becomes_one_line_on_stderr_and_its_exit_code(
    answer: Reply, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    with ScriptedIntake(lambda seen: answer).running() as intake:
        exit_code = main(["jobs", "show", JOB, "--url", intake.url])
    err = capsys.readouterr().err

    assert exit_code == code
    assert err.startswith(f"sluice: intake answered {answer.status} ") and err.count("\n") == 1


def test_a_usage_error_is_argparses_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["jobs", "show", "--watch", "--timeout", "soon"])

    assert exited.value.code == 2
    assert "--timeout" in capsys.readouterr().err


def _watched(final: str, held: ScriptedIntake | None = None):
    def route(seen: Seen) -> Reply:
        if seen.path.endswith("/events"):
            start = sse("status", job_view(JOB, "running", 1))
            if held is not None:
                return Reply(events=[start], hold=held.stopping)
            end = live_event(JOB, "running", 4) | {"type": "job.completed", "status": final}
            return Reply(events=[start, sse("progress", live_event(JOB, "running", 2)), sse(final, end)])
        return Reply(json=job_view(JOB, final, done=4))

    return route


@pytest.mark.parametrize(("final", "code"), [("completed", 0), ("partially_failed", 1), ("cancelled", 1)])
def test_watch_exits_0_only_when_the_job_completed(final: str, code: int, capsys: pytest.CaptureFixture[str]) -> None:
    with ScriptedIntake(_watched(final)).running() as intake:
        assert main(["jobs", "show", JOB, "--watch", "--url", intake.url]) == code
    assert capsys.readouterr().out.splitlines()[-1].startswith(f"job {JOB} {final}: ")


def test_watch_into_a_pipe_writes_plain_lines_and_with_json_only_the_final_document(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with ScriptedIntake(_watched("completed")).running() as intake:
        main(["jobs", "show", JOB, "--watch", "--url", intake.url])
        plain = capsys.readouterr()
        main(["jobs", "show", JOB, "--watch", "--json", "--url", intake.url])
        as_json = capsys.readouterr()

    assert "\r" not in plain.out + plain.err
    assert [line.split()[2] for line in plain.out.splitlines()[:-1]] == ["running", "running", "completed"]
    assert json.loads(as_json.out)["status"] == "completed" and as_json.err == ""


def test_on_a_terminal_the_watch_redraws_one_bar_and_ends_its_line() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    display = Display.for_output(terminal, as_json=False)
    for done in (1, 3):
        display.show(JobView.model_validate(job_view(JOB, "running", done)))
    display.close()

    assert terminal.getvalue().count("\r") == 2 and terminal.getvalue().endswith("\n")
    assert terminal.getvalue().count("\n") == 1


def test_watch_past_its_timeout_exits_5(capsys: pytest.CaptureFixture[str]) -> None:
    holder: list[ScriptedIntake] = []
    intake = ScriptedIntake(lambda seen: _watched("completed", holder[0])(seen))
    holder.append(intake)
    with intake.running():
        assert main(["jobs", "show", JOB, "--watch", "--timeout", "0.3", "--url", intake.url]) == 5
    assert capsys.readouterr().err == f"sluice: job {JOB} still running after 0.3s\n"


async def test_ctrl_c_during_a_watch_exits_130_without_a_traceback() -> None:
    holder: list[ScriptedIntake] = []
    intake = ScriptedIntake(lambda seen: _watched("completed", holder[0])(seen))
    holder.append(intake)
    env = {**os.environ, "SLUICE_CONFIG": "/nonexistent/sluice.toml"}
    with intake.running():
        process = subprocess.Popen(
            [sys.executable, "-m", "sluice.cli", "jobs", "show", JOB, "--watch", "--url", intake.url],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
        )  # fmt: skip
        try:
            await eventually(lambda: _answered(intake.requests(path=f"/v1/jobs/{JOB}/events")), timeout=30)
            process.send_signal(signal.SIGINT)
            out, err = await asyncio.to_thread(process.communicate, timeout=30)
        finally:
            process.kill()

    assert process.returncode == 130, err
    assert "Traceback" not in err and "\r" not in out


async def _answered(requests: list[Seen]) -> bool | None:
    return True if requests else None


def test_a_missing_kafka_extra_is_one_line_naming_the_pip_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "aiokafka", None)  # import aiokafka now raises ImportError

    assert main(["events", "tail"]) == 2
    assert capsys.readouterr().err == (
        "sluice: `sluice events tail` needs the kafka extra: pip install 'sluice-client[kafka]'\n"
    )


def test_the_sdk_and_the_cli_load_without_aiokafka() -> None:
    script = (
        "import sys, importlib.metadata; sys.modules['aiokafka'] = None\n"
        "importlib.metadata.entry_points = lambda **_: []  # as installed alone: no operator commands\n"
        "import sluice.client, sluice.cli.__main__\n"
        "sluice.cli.__main__.build_parser()\n"
        "print(sluice.client.SluiceClient.__name__)\n"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)

    assert completed.returncode == 0, completed.stderr
    assert completed.stdout == "SluiceClient\n"


def _stack(ready: bool, lag: list[dict] | None = None):
    checks = {"postgres": "ok", "kafka": "ok" if ready else "down", "redis": "ok"}
    dashboard = {
        "tenant": "t", "jobs": [], "throughput": [], "dead_letters": [], "lag": lag or [],
        "backlog": {"queued_batches": 7, "in_flight_batches": 2, "queued": [], "in_flight": []},
    }  # fmt: skip

    def route(seen: Seen) -> Reply:
        if seen.path == "/readyz":
            return Reply(200 if ready else 503, {"ready": ready, "checks": checks}, {"Retry-After": "5"})
        return Reply(json=dashboard)

    return route


def test_status_exits_0_when_ready_and_shows_backlog_and_lag(capsys: pytest.CaptureFixture[str]) -> None:
    lag = [
        {"source": "p", "topic": "sluice.tasks", "partition": "0", "group": "sluice-processor", "lag": 5.0},
        {"source": "p", "topic": "sluice.tasks", "partition": "1", "group": "sluice-processor", "lag": 3.0},
    ]
    with ScriptedIntake(_stack(True, lag)).running() as intake:
        code = main(["status", "--url", intake.url, "--api-key", "sk_test"])
    out = capsys.readouterr().out

    assert code == 0
    assert "backlog       7 batches queued, 2 in flight" in out
    assert "lag           sluice-processor on sluice.tasks: 8" in out


def test_status_exits_3_when_a_dependency_is_down_without_asking_for_more(capsys: pytest.CaptureFixture[str]) -> None:
    with ScriptedIntake(_stack(False)).running() as intake:
        code = main(["status", "--json", "--url", intake.url, "--api-key", "sk_test"])
        asked = [seen.path for seen in intake.requests()]
    report = json.loads(capsys.readouterr().out)

    assert code == 3
    assert report["ready"] is False and report["checks"]["kafka"] == "down"
    assert asked == ["/readyz"]
