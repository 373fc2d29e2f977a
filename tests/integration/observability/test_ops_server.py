"""The metrics/health server of the services without a web app, over real HTTP."""

import asyncpg
import httpx

from services.ops.devstack.ports import free_port
from shared.metrics import SluiceMetrics
from shared.ops_server import serving_ops


async def test_readiness_names_the_dependency_that_is_down_while_health_and_metrics_still_answer(
    postgres_server_url: str,
) -> None:
    metrics = SluiceMetrics()
    metrics.items_processed.add(2, {"kind": "bench.noop", "status": "succeeded"})
    closed_port = free_port()

    async def postgres_up() -> bool:
        connection = await asyncpg.connect(postgres_server_url, timeout=2)
        await connection.close()
        return True

    async def postgres_elsewhere() -> bool:
        await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{closed_port}/x", timeout=2)
        return True

    checks = {"postgres": postgres_up, "replica": postgres_elsewhere}
    async with serving_ops("127.0.0.1", free_port(), metrics, checks) as port, httpx.AsyncClient() as client:
        base = f"http://127.0.0.1:{port}"
        ready = await client.get(f"{base}/readyz")
        health = await client.get(f"{base}/healthz")
        scraped = await client.get(f"{base}/metrics")
        missing = await client.get(f"{base}/nope")
    assert ready.status_code == 503
    assert ready.json()["checks"]["postgres"] == "ok"
    assert ready.json()["checks"]["replica"].startswith("down: ")
    assert health.status_code == 200
    assert 'sluice_items_processed_total{kind="bench.noop",status="succeeded"} 2.0' in scraped.text
    assert missing.status_code == 404


async def test_port_zero_serves_nothing() -> None:
    async with serving_ops("127.0.0.1", 0, SluiceMetrics(), {}) as port:
        assert port is None
