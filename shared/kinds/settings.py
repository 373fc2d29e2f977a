"""Settings the built-in kinds read (plug-ins may read their own)."""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class KindSettings(BaseSettings):
    """Limits and allowances for the built-in kinds, from SLUICE_KINDS_* variables."""

    model_config = SettingsConfigDict(env_prefix="SLUICE_KINDS_", frozen=True, extra="ignore")

    web_connect_timeout_s: float = Field(5.0, gt=0, le=120)
    web_read_timeout_s: float = Field(15.0, gt=0, le=600)
    web_max_redirects: int = Field(5, ge=0, le=30)
    web_max_body_bytes: int = Field(5 * 1024 * 1024, ge=1024, le=100 * 1024 * 1024)
    web_per_host_concurrency: int = Field(8, ge=1, le=1000, description="Requests in flight to one host")
    web_max_connections: int = Field(100, ge=1, le=10_000, description="Requests in flight per processor")
    web_max_links: int = Field(500, ge=0, le=100_000, description="Outbound links kept per page")
    web_user_agent: str = "SluiceBot/0.1 (+https://github.com/sluice)"
    web_allow_networks: list[str] = Field(
        default_factory=list,
        description="CIDRs or host names that may be fetched although private (e.g. 127.0.0.0/8 for a local site)",
    )
    bench_cpu_default_rounds: int = Field(2000, ge=1, le=10_000_000)
