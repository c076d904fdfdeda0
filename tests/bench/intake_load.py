"""`make bench`, open loop: intake under a constant arrival rate with the whole pipeline running, beside a
FastAPI route that only validates the same request, measured in the same run.

vegeta (from the Go module proxy, `make bench` installs it) sends HUBNET_BENCH_RATE requests a second
(300) for HUBNET_BENCH_LOAD_S seconds (60) whatever the answers take: to the gateway of the running test
stack, where intake stores each consultation and the relay, matching, notify and reporting carry it on;
then to the validation-only route. Reported: p50, p95, p99 and errors of each, and their ratio. Bounded:
vegeta stops at the duration, each request times out after 5 s, each attack after the duration plus 60 s.

Freshness, under the same load: from intake's 202 to visible in reporting, p50 and p99, read from reporting's
own histogram `hubnet_reporting_event_age_seconds` (from the event's time, which intake records before it
answers 202, to the commit of the view: an upper bound of what a person waits), its buckets before the
attack subtracted from those after reporting has caught up (bounded: 120 s), quantiles interpolated within
a bucket as Prometheus' `histogram_quantile` does.
"""

from __future__ import annotations

import base64
import json
import os
import random
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final

import httpx
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table

from shared.contract.vocabulary import check_digit
from tests.support import stack_env

ROOT: Final = Path(__file__).resolve().parents[2]
VEGETA: Final = Path(os.environ.get("HUBNET_VEGETA", ROOT / ".local" / "cache" / "go" / "bin" / "vegeta"))
RATE: Final = int(os.environ.get("HUBNET_BENCH_RATE", "300"))
DURATION_S: Final = int(os.environ.get("HUBNET_BENCH_LOAD_S", "60"))
TARGET_P99_MS: Final = 50.0
FRESHNESS_TARGETS_MS: Final = {"p50": 200.0, "p99": 1000.0}
SUBMITTED: Final = "hubnet.consultation.submitted.v1"
HUB: Final = "mediso"
REQUEST: Final = {
    "language": "ja",
    "applicant_kind": "startup",
    "organization": "株式会社ベンチマーク",
    "corporate_number": "7000012050002",
    "prefecture": "13",
    "title": "負荷試験の相談",
    "product_name": "負荷試験ソフトウェア",
    "product_kind": "samd",
    "development_stage": "clinical",
    "topics": ["regulation", "fundraising"],
    "family_name": "負荷",
    "given_name": "太郎",
    "family_name_kana": "フカ",
    "given_name_kana": "タロウ",
    "email": "load@example.jp",
    "body": "一定の到着率で送られる相談です。\n治験計画について助言をお願いします。",
}

console = Console(stderr=True)


@dataclass
class Attack:
    name: str
    requests: int
    rate: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    status_codes: dict[str, int]


RUN: Final = random.randrange(10**11)
"""Applicants differ from one run to the next too: a run repeating the last one's addresses and corporate
numbers would be measured suppressing acknowledgements (five an hour per address) and flagging duplicates."""


def applicant(number: int) -> dict[str, Any]:
    """A different applicant for each request, as in life: address, corporate number and product of its own
    (the same one sent 18,000 times would be a flood of likely duplicates, not a load)."""
    base = f"{(RUN + number) % 10**12:012d}"
    return {
        **REQUEST,
        "email": f"load-{RUN}-{number}@example.jp",
        "corporate_number": f"{check_digit(base)}{base}",
        "product_name": f"負荷試験ソフトウェア {number}",
    }


def targets(url: str) -> bytes:
    """vegeta's targets, one JSON line per request of the attack (it takes them in turn)."""
    lines = (
        json.dumps(
            {
                "method": "POST",
                "url": url,
                "header": {"Content-Type": ["application/json"]},
                "body": base64.b64encode(json.dumps(applicant(number), ensure_ascii=False).encode()).decode(),
            }
        )
        for number in range(RATE * DURATION_S)
    )
    return "\n".join(lines).encode() + b"\n"


def attack(name: str, url: str) -> Attack:
    console.print(f"[bold]{name}[/]: {RATE} requests/s for {DURATION_S} s, open loop → {url}")
    started = time.monotonic()
    try:
        results = subprocess.run(
            [
                str(VEGETA),
                "attack",
                "-format=json",
                f"-rate={RATE}/s",
                f"-duration={DURATION_S}s",
                "-timeout=5s",
                "-max-workers=1000",
                "-keepalive=true",
            ],
            input=targets(url),
            capture_output=True,
            timeout=DURATION_S + 60,
            check=True,
        ).stdout
        report = subprocess.run(
            [str(VEGETA), "report", "-type=json"], input=results, capture_output=True, timeout=60, check=True
        ).stdout
    except subprocess.TimeoutExpired:
        sys.exit(f"vegeta did not finish {name} within {DURATION_S + 60} s")
    summary: dict[str, Any] = json.loads(report)
    latencies = summary["latencies"]
    ok = {code: count for code, count in summary["status_codes"].items() if code.startswith("2")}
    console.print(f"  done in {time.monotonic() - started:.0f} s")
    return Attack(
        name=name,
        requests=summary["requests"],
        rate=summary["rate"],
        p50_ms=latencies["50th"] / 1e6,
        p95_ms=latencies["95th"] / 1e6,
        p99_ms=latencies["99th"] / 1e6,
        max_ms=latencies["max"] / 1e6,
        errors=summary["requests"] - sum(ok.values()),
        status_codes=summary["status_codes"],
    )


def age_buckets(reporting: str) -> dict[float, float]:
    """Reporting's cumulative counts of submissions by age bound (seconds; +Inf as infinity)."""
    text = httpx.get(f"{reporting}/metrics", timeout=10).text
    found: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == "hubnet_reporting_event_age_seconds":
            for sample in family.samples:
                if sample.name.endswith("_bucket") and sample.labels.get("type") == SUBMITTED:
                    found[float(sample.labels["le"])] = sample.value
    return found


def quantile(q: float, buckets: dict[float, float]) -> float:
    """`histogram_quantile`: the bound's bucket found by rank, linear within it (seconds)."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]] if bounds else 0.0
    if total <= 0:
        return float("nan")  # nothing observed: no quantile (as Prometheus says)
    rank, lower, below = q * total, 0.0, 0.0
    for bound in bounds:
        if buckets[bound] >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(buckets[bound] - below, 1e-9)
        lower, below = bound, buckets[bound]
    return lower


def freshness(reporting: str, before: dict[float, float], accepted: int) -> dict[str, float]:
    """p50 and p99 (ms) of the submissions projected since `before`, once all `accepted` are."""
    deadline = time.monotonic() + 120
    while True:
        after = age_buckets(reporting)
        delta = {bound: count - before.get(bound, 0.0) for bound, count in after.items()}
        projected = delta.get(float("inf"), 0.0)
        if projected >= accepted or time.monotonic() > deadline:
            break
        time.sleep(1)
    if projected < accepted:
        console.print(f"[yellow]reporting projected {projected:.0f} of {accepted} accepted submissions in 120 s")
    return {"p50": quantile(0.5, delta) * 1000, "p99": quantile(0.99, delta) * 1000, "projected": projected}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def baseline_server() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "tests.bench.validation_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/openapi.json", timeout=1).status_code == 200:
                return server, url
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    sys.exit("the validation-only baseline did not start within 30 s")


def main() -> None:
    if not VEGETA.exists():
        sys.exit(f"vegeta is missing at {VEGETA}: `make bench` installs it (go install github.com/tsenart/vegeta/v12)")
    env = stack_env()
    origin = env["HUBNET_GATEWAY_URL"]
    probe = httpx.post(f"{origin}/v1/hubs/{HUB}/consultations", json=REQUEST, timeout=10)
    if probe.status_code != 202:
        sys.exit(f"intake does not accept the benchmark's request through {origin}: {probe.status_code} {probe.text}")
    reporting = env["HUBNET_REPORTING_URL"]
    time.sleep(2)  # the probe's consultation projected before the count starts
    before = age_buckets(reporting)
    intake = attack(
        "intake through the gateway (stores, relays; matching, notify, reporting consume)",
        f"{origin}/v1/hubs/{HUB}/consultations",
    )
    fresh = freshness(reporting, before, intake.status_codes.get("202", 0))
    server, url = baseline_server()
    try:
        baseline = attack("FastAPI validation-only route", f"{url}/v1/hubs/{HUB}/consultations")
    finally:
        server.terminate()
        server.wait(timeout=10)

    table = Table(title=f"intake, open loop: {RATE} requests/s for {DURATION_S} s")
    for column in ("path", "requests", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors"):
        table.add_column(column, justify="left" if column == "path" else "right")
    for run in (intake, baseline):
        table.add_row(
            run.name,
            f"{run.requests:,}",
            f"{run.p50_ms:.1f}",
            f"{run.p95_ms:.1f}",
            f"{run.p99_ms:.1f}",
            f"{run.max_ms:.0f}",
            str(run.errors),
        )
    Console().print(table)
    met = intake.p99_ms <= TARGET_P99_MS and intake.errors == 0
    Console().print(
        f"intake p99 {intake.p99_ms:.1f} ms ({intake.p99_ms / baseline.p99_ms:.1f}× the validation-only route's "
        f"{baseline.p99_ms:.1f} ms), {intake.errors} errors: target p99 ≤ {TARGET_P99_MS:.0f} ms, 0 errors "
        f"{'✓' if met else '✗ not met'}"
    )
    # Not met when unmeasured (NaN compares false) or when not every accepted submission was projected.
    fresh_met = fresh["projected"] >= intake.status_codes.get("202", 0) and all(
        fresh[q] <= target for q, target in FRESHNESS_TARGETS_MS.items()
    )
    Console().print(
        f"freshness, 202 to visible in reporting ({fresh['projected']:,.0f} submissions at {RATE} requests/s): "
        f"p50 {fresh['p50']:.0f} ms, p99 {fresh['p99']:.0f} ms: target p50 ≤ 200 ms, p99 ≤ 1 s "
        f"{'✓' if fresh_met else '✗ not met'}"
    )
    out = ROOT / ".local" / "bench.json"
    results: dict[str, Any] = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
    results["intake_open_loop"] = {
        "rate": RATE,
        "duration_s": DURATION_S,
        "intake": asdict(intake),
        "baseline": asdict(baseline),
        "freshness_ms": fresh,
    }
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
