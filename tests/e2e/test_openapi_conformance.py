"""Schemathesis, with every check but the one `tests/e2e/schemathesis.toml` explains, against the origin's
OpenAPI (every service's public operations in one document) through the gateway: what the document says is
what the gateway and the services behind it answer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from deploy.local.stack import gateway
from tests.e2e.conftest import Stack

ROOT = Path(__file__).resolve().parents[2]


def test_the_api_answers_as_its_openapi_says_through_the_gateway(stack: Stack, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SCHEMATHESIS_HOOKS": "tests.e2e.schemathesis_hooks"}
    run = subprocess.run(
        [
            *(sys.executable, "-m", "schemathesis.cli", "--config-file", str(ROOT / "tests/e2e/schemathesis.toml")),
            *("run", f"{stack.origin}/openapi.json", "--url", stack.origin, "--checks", "all"),
            *("--exclude-checks", "ensure_resource_availability"),  # why: tests/e2e/schemathesis.toml
            *("--max-examples", "40", "--seed", "1", "--no-color"),
            *("--header", f"Authorization: Bearer {stack.token('medic')}"),
            *("--report-dir", str(tmp_path)),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,
        env=env,
    )
    assert run.returncode == 0, run.stdout[-8000:] + run.stderr[-2000:]
    operations = sum(len(methods) for methods in gateway.API.values())
    assert f"{operations} selected / {operations} total" in run.stdout, "every public operation is in the document"
