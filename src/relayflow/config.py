"""Settings from the environment (prefix RELAYFLOW_) and an optional .env file."""

from __future__ import annotations

from functools import lru_cache

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RELAYFLOW_", env_file=".env", extra="ignore")

    database_url: str = "sqlite:///./relayflow.db"
    # A read replica of database_url (PostgreSQL streaming replication), for the history
    # lists, counts, charts and exports; everything else reads and writes database_url.
    read_database_url: str | None = None
    # Fernet key (urlsafe base64, 32 bytes). When unset, a key file beside the database is used.
    secret_key: SecretStr | None = None
    secret_key_file: str = "./relayflow.secret"
    host: str = "127.0.0.1"
    port: int = 8000
    # Worker tuning. The lease must outlive the longest step; heartbeats renew it.
    lease_seconds: float = 30.0
    heartbeat_seconds: float = 10.0
    poll_seconds: float = 0.5
    batch_size: int = 64
    # Runs a worker keeps in flight at once: two batches of up to half this many (and at
    # most batch_size each), their INTEGRATION calls and messages performed side by side.
    worker_concurrency: int = 64
    # Worker processes `relayflow serve` runs beside itself, each with the concurrency above;
    # 0 = one per CPU core but the one the web server needs, at least 1 and at most 4.
    # (Python runs one thread at a time per process, so one process uses one core at most.)
    # `relayflow worker` is always one process.
    serve_worker_processes: int = 0
    # While the database is unreachable workers retry with a doubling pause, up to this.
    # (Connect and keepalive timeouts: storage/db.py; the database URL may override them.)
    database_retry_max_seconds: float = 5.0
    # How often each worker looks for due schedule ticks (every worker does; keys dedupe).
    schedule_poll_seconds: float = 5.0
    max_body_bytes: int = 1024 * 1024
    # Delivery: attempts per message in all, and the first retry delay (doubling, jittered).
    delivery_max_attempts: int = 4
    delivery_retry_base_seconds: float = 30.0
    # Requests inside the app at once; keep it below the database pool (storage/db.py: 20
    # connections on SQLite, 30 on PostgreSQL) and the 40-thread pool. See web/concurrency.py.
    max_concurrent_requests: int = 16
    # Phone numbers written without +country code are read in this region (e.g. "US");
    # unset, such numbers are refused rather than guessed.
    default_phone_region: str | None = None
    # The address users reach this server on, for webhook URLs (e.g. https://relay.example.com).
    public_url: str | None = None
    # Mark the sign-in cookie Secure. Unset: on when public_url or the request is https, so
    # a plain-http loopback setup still signs in and a TLS deployment never sends it in clear.
    cookie_secure: bool | None = None
    # Outbound requests (INTEGRATION nodes, HTTP providers) refuse loopback, private,
    # link-local and other non-public targets. Comma-separated CIDRs and host names listed
    # here are allowed in every workspace, e.g. "10.0.0.0/8,crm.internal". See docs/runs.md.
    network_allow: str = ""
    # Requests per minute (a fixed one-minute window, counted in the database so every web
    # process shares it) per API key on /api/v1 and per webhook on /hooks/{token}; 0 = no limit.
    rate_limit_api_per_minute: int = 600
    rate_limit_webhook_per_minute: int = 300
    # Intake: a request body must arrive within this many seconds (then 408), and the request
    # line plus headers may hold at most this many bytes (then 431). See web/limits.py.
    body_read_timeout_seconds: float = 10.0
    max_header_bytes: int = 16 * 1024
    # Upstream triggers: how deep a chain of TRIGGER_WORKFLOW runs may go (a run started by a
    # run started by ... counts each hop), and how many child runs one run may start.
    max_trigger_depth: int = 10
    max_child_runs: int = 100
    # Deactivating a workflow cancels its in-flight runs in the background, this many per
    # transaction, so no request and no worker iteration holds the database for long.
    cancel_batch_size: int = 500
    # Every provider call (SMTP or HTTP: connect, TLS, every read and write) ends within this.
    provider_timeout_seconds: float = 30.0
    # When set, GET /metrics needs `Authorization: Bearer <this>`.
    metrics_token: SecretStr | None = None
    # `json`: one JSON object per log line (telemetry/logs.py); anything else: plain text.
    log_format: str = "text"


@lru_cache
def get_settings() -> Settings:
    return Settings()
