"""``python -m bridge run`` serves the API; ``python -m bridge openapi`` writes the published spec."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from common.cli import make_app

# Start-up imports only typer: bridge.settings drags in SQLAlchemy and bridge.app FastAPI, so
# each command imports them itself and `--help` answers at once.

SPEC_PATH = Path(__file__).resolve().parent / "openapi.json"
cli = make_app("REST + SSE bridge between the trading pipeline and the desktop client.")


def spec_json() -> str:
    """The OpenAPI document as committed: stable key order, trailing newline."""
    from bridge.app import create_app
    from config import BridgeSettings, load_settings

    app = create_app(load_settings(), BridgeSettings(viewer_tokens=[], operator_tokens=[]))
    return json.dumps(app.openapi(), indent=2, sort_keys=True) + "\n"


@cli.command()
def run(
    host: Annotated[str | None, typer.Option(help="Bind address (default BTCMETA_BRIDGE__HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default BTCMETA_BRIDGE__PORT).")] = None,
    namespace: Annotated[str | None, typer.Option(help="Default namespace, e.g. a replay's.")] = None,
    no_stream: Annotated[bool, typer.Option("--no-stream", help="Serve REST only, no Kafka feed.")] = False,
) -> None:
    """Serve the bridge with uvicorn until interrupted."""
    import uvicorn

    from bridge.app import create_app
    from bridge.settings import uvicorn_ssl_options
    from common import health
    from common.logging import configure_logging
    from config import BridgeSettings, get_settings

    settings = get_settings().resolved()
    configure_logging("bridge", settings.log_level, settings.log_json)
    overrides: dict[str, object] = {}
    if host:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if namespace:
        overrides["default_namespace"] = namespace
    if no_stream:
        overrides["stream_enabled"] = False
    # validated like the environment's values (port range, namespace shape)
    bridge = BridgeSettings.model_validate(settings.bridge.model_dump() | overrides)
    if not bridge.viewer_tokens and not bridge.operator_tokens:
        typer.echo(
            "warning: no tokens configured, every request will get 401 (see BTCMETA_BRIDGE__*_TOKENS)",
            err=True,
        )
    health.start(settings, kafka=bridge.stream_enabled)  # metrics + /healthz on BTCMETA_METRICS_PORT
    app = create_app(settings, bridge)
    uvicorn.run(
        app,
        host=bridge.host,
        port=bridge.port,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=5,
        **uvicorn_ssl_options(bridge),  # HTTPS when BTCMETA_BRIDGE__TLS_CERTFILE/KEYFILE are set
    )


@cli.command()
def openapi(
    output: Annotated[Path, typer.Option(help="Where to write the spec.")] = SPEC_PATH,
    check: Annotated[bool, typer.Option("--check", help="Fail if the file is out of date.")] = False,
) -> None:
    """Write (or with --check, verify) the OpenAPI spec the desktop client is built against."""
    text = spec_json()
    if check:
        if not output.exists() or output.read_text() != text:
            typer.echo(f"{output} is out of date: run `python -m bridge openapi`", err=True)
            raise typer.Exit(1)
        typer.echo(f"{output} is up to date")
        return
    output.write_text(text)
    typer.echo(f"wrote {output}")
