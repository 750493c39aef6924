"""No credential reaches any output of a real service run, even with every debug switch on.

The executor runs as its own process (``python -m executor run``'s code path) against the Kraken
Futures stand-in with DEBUG logging and CCXT's verbose mode on: both write the request headers
(``APIKey``, ``Authent``) of every private call. Everything the process writes (stdout, stderr,
any file in its working directory) is then searched for the key and the secret.
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest

from config import Settings
from tests.standin.kit import make_intent, publish
from tests.standin.kraken_futures import KrakenFuturesStandIn

pytestmark = [pytest.mark.integration, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
#: A fixed, recognisable fake key: a grep for it is what an operator would do after an incident.
API_KEY = "btcmeta-FAKE-kraken-api-key-0d9f7c2a61"
API_SECRET = base64.b64encode(b"btcmeta fake kraken api secret, never valid anywhere!" * 2).decode()
#: The executor's ``run`` command with CCXT's verbose switch on for every exchange instance.
DRIVER = (
    "import ccxt\n"
    "ccxt.Exchange.verbose = True\n"
    "from executor.cli import app\n"
    "app(['run', '--max-messages', '1', '--idle-timeout', '60'])\n"
)


def _env(settings: Settings, venue: KrakenFuturesStandIn) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "BTCMETA_DATABASE_URL": settings.database_url.get_secret_value(),
        "BTCMETA_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "BTCMETA_KAFKA__TOPIC_PREFIX": settings.kafka.topic_prefix,
        "BTCMETA_EXCHANGE__MODE": "kraken",
        "BTCMETA_EXCHANGE__API_KEY": API_KEY,
        "BTCMETA_EXCHANGE__API_SECRET": API_SECRET,
        "BTCMETA_EXCHANGE__BASE_URL": venue.base_url,
        "BTCMETA_LOG_LEVEL": "DEBUG",
        "BTCMETA_RISK__MAX_INTENT_AGE_S": "3600",
    }


def test_kraken_credentials_never_reach_any_output(settings: Settings, tmp_path: Path) -> None:
    work = tmp_path / "cwd"  # the process's working directory: any log file it writes lands here
    work.mkdir()
    with KrakenFuturesStandIn(API_KEY, delay_s=1.0) as venue:
        publish(settings, [make_intent(0, 0.25)])
        with (tmp_path / "stdout.log").open("wb") as out, (tmp_path / "stderr.log").open("wb") as err:
            done = subprocess.run(
                [sys.executable, "-c", DRIVER],
                cwd=work,
                env=_env(settings, venue),
                stdout=out,
                stderr=err,
                timeout=240,
                check=False,
            )
        executed = venue.state.sendorder_executions
        auth_failures = venue.state.auth_failures
    outputs = {
        p.relative_to(tmp_path): p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()
    }
    everything = "\n".join(outputs.values())
    assert done.returncode == 0, (
        f"executor exited {done.returncode}; stderr has {len(outputs[Path('stderr.log')])} chars"
    )
    # the run really signed private calls (with the key: no auth failure) ...
    assert executed == 1 and auth_failures == 0
    # ... no form of a credential is in any output (counts only: never print what leaked) ...
    leaks = {
        str(name): sum(text.count(form) for form in (API_KEY, quote(API_KEY, safe=""), API_SECRET))
        for name, text in outputs.items()
    }
    assert not any(leaks.values()), f"credentials found in: {leaks}"
    # ... although both debug paths did write the headers, masked (booleans: no text in a failure)
    verbose_on = "fetch Request:" in everything and "RequestHeaders:" in everything
    key_header_masked = re.search(r"['\"]APIKey['\"]: ['\"]\*\*\*['\"]", everything) is not None
    unmasked_header = re.search(r"['\"](APIKey|Authent)['\"]: ['\"](?!\*\*\*['\"])", everything) is not None
    assert verbose_on and key_header_masked and not unmasked_header
