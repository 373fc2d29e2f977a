"""Chaos fixtures: the scale, each scenario's own stack, a recorder of every scenario's figures, and dedicated
infrastructure to break."""

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.ops.devstack.pg_control import EmbeddedPostgres
from services.ops.devstack.redis import running_embedded_redis
from tests.support.chaos import Recorder, Scale, ScenarioRecord, wait_for_assignment
from tests.support.infra import SuiteBroker
from tests.support.pipeline import Pipeline
from tests.support.stack import FreshStacks

RECORDER = pytest.StashKey[Recorder]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[RECORDER] = Recorder()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    record: ScenarioRecord | None = getattr(item, "chaos_record", None)
    if record is not None:
        if report.skipped:
            record.skipped = True
        elif report.failed:
            record.passed = False
        elif report.when == "call":
            record.passed = True
    return report


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """After pytest's own summary line: the chaos summary as one JSON object, the run's last line."""
    recorder = config.stash.get(RECORDER, None)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if recorder is None or not recorder.records or reporter is None:
        return
    reporter.write_line(json.dumps(recorder.summary(), sort_keys=False))


@pytest.fixture(scope="session")
def scale() -> Scale:
    return Scale.from_env()


@pytest.fixture(scope="module")
def stack_overrides(scale: Scale) -> dict[str, str]:
    """One task batch per processor poll, so results (and progress) come batch by batch and a break lands while
    a job is visibly part done, however fast this machine runs. Quick runs keep one retry tier: each tier is one
    more consumer group a processor joins at start."""
    overrides = {"SLUICE_PROCESSOR_BATCHES_PER_POLL": "1"}
    return overrides if scale.full else {**overrides, "SLUICE_KAFKA_RETRY_TIERS_S": "[2]"}


@pytest.fixture
async def pipeline(fresh_stack: FreshStacks) -> Pipeline:
    """This scenario's own stack, with its processor and aggregator in their groups: a quick job's progress is
    then seen as it happens, so a scenario can break something while the job is partly done."""
    running = await fresh_stack.start()
    await wait_for_assignment(running, "processor", running.topics.tasks)
    await wait_for_assignment(running, "aggregator", running.topics.results)
    return running


@pytest.fixture
def scenario(request: pytest.FixtureRequest, suite_broker: SuiteBroker) -> ScenarioRecord:
    """This scenario's figures, reported in the chaos summary whatever the outcome."""
    recorder = request.config.stash[RECORDER]
    recorder.broker, recorder.brokers = suite_broker.name, suite_broker.nodes
    record = ScenarioRecord(request.node.name.removeprefix("test_"))
    request.node.chaos_record = record
    recorder.records.append(record)
    return record


@pytest.fixture
def own_postgres() -> Iterator[EmbeddedPostgres]:
    """A Postgres only this scenario uses, restartable on its port and data directory."""
    # mkdtemp, not tmp_path: the server runs as another user when we are root and must traverse the path.
    data_dir = Path(tempfile.mkdtemp(prefix="sluice-chaos-pg-"))
    server = EmbeddedPostgres(data_dir, database="sluice_chaos")
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[str]:
    with running_embedded_redis(tmp_path / "redis") as url:
        yield url
