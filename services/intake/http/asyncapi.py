"""GET /asyncapi (JSON) and /asyncapi.html: the document of every topic; OpenAPI stays at /docs."""

from typing import Any

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from faststream.specification.asyncapi.site import get_asyncapi_html

from services.intake.http.jobs import Runtime
from shared.contracts import asyncapi_document, asyncapi_json

router = APIRouter(tags=["contracts"])


@router.get("/asyncapi")
async def asyncapi(rt: Runtime) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of this deployment's topics (names follow SLUICE_KAFKA_TOPIC_PREFIX)."""
    return asyncapi_json(rt.settings.kafka)


@router.get("/asyncapi.html", response_class=HTMLResponse)
async def asyncapi_html(rt: Runtime) -> str:
    return get_asyncapi_html(asyncapi_document(rt.settings.kafka).to_specification(), try_it_out_path=None)
