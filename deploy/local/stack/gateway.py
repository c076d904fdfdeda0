"""The gateway: nginx (Debian's package), the one origin people and clients use, routing paths to the services.

`/portal/…` goes to intake and `/console/…` to reporting. Each public API path goes, method by method, to
the service that answers it (`API`): reads of consultations to reporting's views, commands to intake, the
roster to matching; any other method gets the gateway's own 405 with the path's `Allow`. Anything else goes
to intake, which answers 404 in the caller's language. The nginx configuration is rendered from these
tables at every start of the local stack, and for Compose and Kubernetes by `hubnet stack gateway-config`
(`tests/unit/test_deploy_manifests.py` holds the committed files and `API` itself to the truth).
"""

from __future__ import annotations

import importlib
import json
import os
import pwd
import re
import shutil
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
from rich.console import Console

from deploy.local.stack import process
from deploy.local.stack.instance import ROOT, SERVICES, Instance, StackError
from shared import i18n
from shared.http import TOO_MANY_REQUESTS

HEALTH_PATH: Final = "/gateway/healthz"
MAX_BODY: Final = "64m"
"""Above any service's own limit (intake: several 10 MB attachments), so that the service answers 413 in
the caller's language rather than nginx in English."""
NOT_PUBLIC: Final = ("/metrics", "/healthz", "/readyz")
"""The services' operational endpoints: for probes and Prometheus on the services' own ports, not the public origin."""
NOT_PUBLIC_TARGET: Final = "/gateway/not-public"
"""Where those are sent instead: a path no service has, so intake answers its own 404."""
METHOD_NOT_ALLOWED: Final = "This method is not allowed here"
"""The services' own message for 405 (`shared/http.py`), from the same catalogs."""

API: Final = {
    "/v1/hubs/{hub}/consultations": {"GET": "reporting", "POST": "intake"},
    "/v1/hubs/{hub}/consultations/{consultation_id}": {"GET": "reporting"},
    "/v1/hubs/{hub}/consultations/{consultation_id}/screening": {"POST": "intake"},
    "/v1/hubs/{hub}/consultations/{consultation_id}/notes": {"POST": "intake"},
    "/v1/hubs/{hub}/consultations/{consultation_id}/closure": {"POST": "intake"},
    "/v1/hubs/{hub}/consultations/{consultation_id}/withdrawal": {"POST": "intake"},
    "/v1/hubs/{hub}/consultations/{consultation_id}/applicant-links/revocation": {"POST": "intake"},
    "/v1/hubs/{hub}/entries": {"POST": "intake"},
    "/v1/hubs/{hub}/staff": {"POST": "intake"},
    "/v1/staff/sessions": {"POST": "intake"},
    "/v1/hubs/{hub}/supporters": {"GET": "matching"},
    "/v1/hubs/{hub}/supporters/{supporter_id}": {"PUT": "matching"},
}
"""Each public API path and, per method, the service that answers it (HEAD goes with GET)."""

PREFIXES: Final = {"/portal/": "intake", "/console/": "reporting"}
"""The applicants' portal and the staff console: every path under each prefix goes to its service."""

STATIC: Final = {"/portal/static/": "intake", "/console/static/": "reporting"}
"""Stylesheets and scripts: not rate-limited (a page loads several)."""


@dataclass(frozen=True, slots=True)
class Limit:
    """A request rate per client address (nginx's leaky bucket): `per_minute`, with `burst` at once."""

    zone: str
    per_minute: int
    burst: int
    methods: frozenset[str] | None = None  # the methods counted; None: all

    @property
    def retry_after(self) -> int:
        """Seconds until the bucket has room for one more request."""
        return -(-60 // self.per_minute)


LIMITS: Final = {
    "/v1/hubs/{hub}/consultations": Limit("submissions", per_minute=10, burst=20, methods=frozenset({"POST"})),
    "/v1/staff/sessions": Limit("sign_in", per_minute=10, burst=10, methods=frozenset({"POST"})),
    "/portal/": Limit("portal", per_minute=60, burst=60),
}
"""What the gateway limits per client address: public submissions, staff sign-in, the portal. Past a limit it
answers 429 with Retry-After (a page in both languages on the portal, the problem body on the API)."""


def allow(template: str) -> str:
    """The `Allow` of an API path: its methods, and HEAD with GET."""
    methods = set(API[template]) | ({"HEAD"} if "GET" in API[template] else set())
    return ", ".join(sorted(methods))


def path_regex(template: str) -> str:
    """`/v1/hubs/{hub}/supporters` → `^/v1/hubs/[^/]+/supporters$`."""
    return "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"


def nginx_binary() -> Path:
    """`HUBNET_NGINX_BIN`, else nginx on the PATH or Debian's /usr/sbin/nginx (`make install` installs it)."""
    configured = os.environ.get("HUBNET_NGINX_BIN")
    found = configured or shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None:
        raise StackError("nginx is missing: `make install` installs Debian's nginx-light (or set HUBNET_NGINX_BIN)")
    return Path(found)


@dataclass(frozen=True, slots=True)
class Files:
    """Where a local nginx keeps its pid, logs and temporary files (a container keeps its image's)."""

    pid: Path
    error_log: Path
    access_log: Path
    temp: Path


def _api_blocks(limited: Mapping[str, str]) -> tuple[str, str]:
    """The method maps (http level) and the locations (server level) of the API paths; a limited path's
    location repeats the 405 page, since its own error_page hides the server's."""
    maps, locations = [], []
    for index, (template, methods) in enumerate(API.items()):
        by_method = {**methods, **({"HEAD": methods["GET"]} if "GET" in methods else {})}
        entries = " ".join(f"{method} {service};" for method, service in sorted(by_method.items()))
        maps.append(f'    map $request_method $api_{index} {{ {entries} default ""; }}')
        limit = f"            {limited[template]} error_page 405 = @not_allowed;\n" if template in limited else ""
        locations.append(
            f"        location ~ {path_regex(template)} {{\n"
            f"{limit}"
            f'            if ($api_{index} = "") {{ return 405; }}\n'
            f"            proxy_pass http://$api_{index};\n"
            "        }"
        )
    return "\n".join(maps), "\n".join(locations)


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")  # inside nginx's single quotes


def _limits(exempt: Sequence[str], trusted_proxies: Sequence[str]) -> tuple[str, dict[str, str], str]:
    """The http-level rate-limit maps and zones, each limited location's directives, and the 429 locations."""
    trusted = "".join(f"    set_real_ip_from {cidr};\n" for cidr in trusted_proxies)
    if trusted:
        # Behind these proxies, the client is the last address they did not add themselves.
        trusted += "    real_ip_header X-Forwarded-For;\n    real_ip_recursive on;\n"
    exempted = "".join(f" {address} 1;" for address in exempt)
    http = [
        trusted.rstrip("\n"),
        f"    geo $rate_exempt {{ default 0;{exempted} }}",
        '    map $rate_exempt $client_key { 1 ""; default $binary_remote_addr; }',
        "    limit_req_status 429;",
        "    limit_req_log_level warn;",
    ]
    directives, handlers = {}, []
    messages = i18n.in_every_locale(TOO_MANY_REQUESTS)
    problem = json.dumps(
        {"error": "too_many_requests", "message": messages[i18n.DEFAULT_LOCALE], "messages": messages},
        ensure_ascii=False,
    )
    page = (
        '<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>429</title></head><body>'
        f'<main><h1>{messages["ja"]}</h1><p lang="en">{messages["en"]}</p></main></body></html>'
    )
    for path, limit in LIMITS.items():
        key = "$client_key"
        if limit.methods is not None:
            counted = " ".join(f"{method} $client_key;" for method in sorted(limit.methods))
            http.append(f'    map $request_method ${limit.zone}_key {{ {counted} default ""; }}')
            key = f"${limit.zone}_key"
        http.append(f"    limit_req_zone {key} zone={limit.zone}:10m rate={limit.per_minute}r/m;")
        directives[path] = (
            f"limit_req zone={limit.zone} burst={limit.burst} nodelay; error_page 429 = @too_many_{limit.zone};"
        )
        html = path in PREFIXES
        handlers.append(
            f"        location @too_many_{limit.zone} {{\n"
            f"            add_header Retry-After {limit.retry_after} always;\n"
            f"            default_type {'text/html' if html else 'application/json'};\n"
            f"            return 429 '{_quoted(page if html else problem)}';\n"
            "        }"
        )
    return "\n".join(line for line in http if line), directives, "\n".join(handlers)


def render(
    *,
    listen: str,
    upstreams: Mapping[str, str | Sequence[str]],
    files: Files | None,
    openapi: Path,
    worker_user: str | None = None,
    rate_exempt: Sequence[str] = (),
    trusted_proxies: Sequence[str] = (),
) -> str:
    """An nginx.conf with the gateway's routes, proxying to `upstreams` (service name → host:port, or several
    replicas' host:port, taken in turn). Requests
    from `rate_exempt` addresses are not rate-limited; `trusted_proxies` (CIDRs) may name the client in
    X-Forwarded-For."""
    servers = "\n".join(
        f"    upstream {name} {{ {' '.join(f'server {one};' for one in ([where] if isinstance(where, str) else where))}"
        " keepalive 16; }"
        for name, where in upstreams.items()
    )
    limit_http, limited, too_many = _limits(rate_exempt, trusted_proxies)
    api_maps, api_locations = _api_blocks(limited)
    prefixes = "\n".join(
        f"        location {prefix} {{ {limited[prefix]} proxy_pass http://{service}; }}"
        if prefix in limited
        else f"        location {prefix} {{ proxy_pass http://{service}; }}"
        for prefix, service in PREFIXES.items()
    )
    statics = "\n".join(
        f"        location {prefix} {{ proxy_pass http://{service}; }}" for prefix, service in STATIC.items()
    )
    allow_map = "\n".join(f'        "~{path_regex(template)}" "{allow(template)}";' for template in API)
    messages = i18n.in_every_locale(METHOD_NOT_ALLOWED)
    body = {"error": "method_not_allowed", "message": messages[i18n.DEFAULT_LOCALE], "messages": messages}
    not_allowed = _quoted(json.dumps(body, ensure_ascii=False))
    hidden = "|".join(path.lstrip("/") for path in NOT_PUBLIC)
    names = "|".join(upstreams)
    if files is None:
        head = "pid /tmp/nginx.pid;\nerror_log stderr warn;"
        http_files = "    access_log /dev/stdout;"
    else:
        head = f"pid {files.pid};\nerror_log {files.error_log} warn;"
        http_files = f"    access_log {files.access_log};\n" + "\n".join(
            f"    {kind}_temp_path {files.temp / kind.removeprefix('client_')};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
    return f"""# Generated by deploy/local/stack/gateway.py (`API` and `PREFIXES` state the routing); edits are lost.
{f"user {worker_user};" if worker_user else "# workers run as nginx's default user"}
worker_processes 1;
{head}
events {{ worker_connections 8192; }}
http {{
{http_files}
    client_max_body_size {MAX_BODY};
    server_tokens off;
{limit_http}
    absolute_redirect off;  # a redirect stays on whatever origin the person used (another proxy in front)
{servers}
{api_maps}
    map $uri $allow {{
{allow_map}
        default "GET, HEAD";
    }}
    server {{
        listen {listen};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-Host $http_host;
        proxy_request_buffering off;
        # A method no service answers on an API path, and TRACE (nginx refuses it itself): 405 with the
        # path's Allow, in the services' words.
        error_page 405 = @not_allowed;
        location @not_allowed {{
            add_header Allow $allow always;
            default_type application/json;
            return 405 '{not_allowed}';
        }}
{too_many}
        location = {HEALTH_PATH} {{ access_log off; default_type text/plain; return 200 "ok\\n"; }}
        # Intake is the front door: it answers any other path with its 404, in the caller's language.
        location ~ ^/({hidden})$ {{ rewrite ^ {NOT_PUBLIC_TARGET} break; proxy_pass http://intake; }}
        location = /openapi.json {{ default_type application/json; alias {openapi}; }}
        location ~ ^/openapi/({names})\\.json$ {{ proxy_pass http://$1/openapi.json; }}
{api_locations}
{prefixes}
{statics}
        location = / {{ return 302 /portal/; }}
        location / {{ proxy_pass http://intake; }}
    }}
}}
"""


def config(inst: Instance, *, worker_user: str | None) -> str:
    """The gateway of a local stack instance."""
    files = Files(
        pid=inst.run_dir / "gateway.nginx.pid",
        error_log=inst.logs / "gateway.log",
        access_log=inst.logs / "gateway.access.log",
        temp=inst.dir / "gateway",
    )
    upstreams = {name: inst.address(name) for name in SERVICES}
    return render(
        listen=inst.address("gateway"),
        upstreams=upstreams,
        files=files,
        openapi=inst.dir / "gateway" / "openapi.json",
        worker_user=worker_user,
        rate_exempt=rate_exempt(inst),
    )


RATE_EXEMPT_VAR: Final = "HUBNET_GATEWAY_RATE_EXEMPT"
RATE_EXEMPT_DEFAULT: Final[Mapping[str, tuple[str, ...]]] = {"test": ("127.0.0.1",)}
"""The test stack's own driver (127.0.0.1) is not limited, so that the suite can send what it needs; the rate
limits are tested from 127.0.0.2. The dev stack, like a deployment, limits every address."""


def rate_exempt(inst: Instance) -> tuple[str, ...]:
    """`HUBNET_GATEWAY_RATE_EXEMPT` (addresses or CIDRs, comma-separated), else the instance's default."""
    configured = os.environ.get(RATE_EXEMPT_VAR)
    if configured is not None:
        return tuple(part.strip() for part in configured.split(",") if part.strip())
    return RATE_EXEMPT_DEFAULT.get(inst.name, ())


CLUSTER_PORT: Final = 8000
CLUSTER_DIRS: Final = (ROOT / "deploy" / "compose", ROOT / "deploy" / "k8s")
"""Where the gateway's files for Compose and for Kubernetes are committed: `gateway.conf` (the services by
their DNS names, on their default ports) and `openapi.json` (the origin's API)."""
CONTAINER_OPENAPI: Final = Path("/etc/nginx/openapi.json")


K8S_TRUSTED_PROXIES: Final = ("10.0.0.0/8",)
"""In Kubernetes the Ingress controller connects from the pod network and names the client in
X-Forwarded-For: set this to your cluster's pod CIDR. Compose has no proxy in front: nothing is trusted."""


def cluster_config(trusted_proxies: Sequence[str] = ()) -> str:
    ports = {name: importlib.import_module(f"services.{name}").SERVICE.default_port for name in SERVICES}
    upstreams = {name: f"{name}:{port}" for name, port in ports.items()}
    return render(
        listen=str(CLUSTER_PORT),
        upstreams=upstreams,
        files=None,
        openapi=CONTAINER_OPENAPI,
        trusted_proxies=trusted_proxies,
    )


def openapi_document(documents: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The origin's OpenAPI: every service's `/v1/` operations in one document, as the gateway serves them
    (each service's own document lists only its own methods on a path it shares with another)."""
    paths: dict[str, dict[str, Any]] = {}
    schemas: dict[str, Any] = {}
    security: dict[str, Any] = {}
    for service, document in documents.items():
        for path, operations in document["paths"].items():
            if path.startswith("/v1/"):
                for method, operation in operations.items():
                    if method in paths.get(path, {}):
                        raise ValueError(f"{service} and another service both answer {method.upper()} {path}")
                    paths.setdefault(path, {})[method] = operation
        components = document.get("components", {})
        for kind, target in (("schemas", schemas), ("securitySchemes", security)):
            for name, schema in components.get(kind, {}).items():
                if target.setdefault(name, schema) != schema:
                    raise ValueError(f"{service} defines {kind} {name!r} unlike another service")
    return {
        "openapi": next(iter(documents.values()))["openapi"],
        "info": {"title": "hubnet", "version": "1", "description": "Every public API of hubnet, at one origin."},
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": dict(sorted(schemas.items())), "securitySchemes": security},
    }


def services_openapi() -> dict[str, Any]:
    """The origin's OpenAPI from the services' own applications (what `hubnet stack gateway-config` writes)."""
    from shared import auth

    key = auth.PrivateKey.generate()  # no request is served: any pair will do
    keys = {"auth_public_key": auth.public_pem(key.public_key()), "auth_private_key": auth.private_pem(key)}
    documents = {}
    for name in SERVICES:
        app_module = importlib.import_module(f"services.{name}.app")
        settings_module = importlib.import_module(f"services.{name}.settings")
        settings_type = getattr(settings_module, f"{name.capitalize()}Settings")
        documents[name] = app_module.create_app(settings_type(**keys)).openapi()
    return openapi_document(documents)


def cluster_files(directory: Path) -> dict[str, str]:
    """File name → content of what the Compose (deploy/compose) or Kubernetes (deploy/k8s) gateway mounts."""
    trusted = K8S_TRUSTED_PROXIES if directory.name == "k8s" else ()
    return {
        "gateway.conf": cluster_config(trusted),
        "openapi.json": json.dumps(services_openapi(), ensure_ascii=False, indent=2) + "\n",
    }


def _worker_user() -> pwd.struct_passwd | None:
    """As root, nginx's workers drop to www-data (Debian's), which must own the temp directories."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("www-data")
    except KeyError:
        return pwd.getpwnam("nobody")


def _launch(inst: Instance, console: Console) -> process.Proc:
    binary = nginx_binary()
    worker = _worker_user()
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):  # as `render` names them
        path = inst.dir / "gateway" / sub
        path.mkdir(parents=True, exist_ok=True)
        if worker is not None:
            os.chown(path, worker.pw_uid, worker.pw_gid)
    inst.logs.mkdir(parents=True, exist_ok=True)
    # The origin's OpenAPI as committed (a unit test keeps it equal to the services' own documents).
    shutil.copyfile(CLUSTER_DIRS[0] / "openapi.json", inst.dir / "gateway" / "openapi.json")
    conf = inst.dir / "gateway" / "nginx.conf"
    conf.write_text(config(inst, worker_user=worker.pw_name if worker else None), encoding="utf-8")
    argv = [str(binary), "-p", str(inst.dir / "gateway"), "-e", str(inst.logs / "gateway.log"), "-c", str(conf)]
    process.run_checked([*argv, "-t", "-q"], what="nginx -t (the gateway's configuration)", timeout=30)
    return process.spawn(inst, "gateway", [*argv, "-g", "daemon off;"], log=inst.logs / "gateway.log")


def _ready(inst: Instance) -> bool:
    try:
        return httpx.get(f"http://{inst.address('gateway')}{HEALTH_PATH}", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _where(inst: Instance, console: Console) -> None:
    console.print(f"[dim]  one origin for people: http://{inst.address('gateway')}/ (portal, console, API)[/]")


component = process.Daemon(
    name="gateway",
    port_roles=("gateway",),
    shutdown=process.Shutdown(signal.SIGQUIT, 10.0),  # nginx's graceful stop
    start_timeout=20.0,
    launch=_launch,
    probe=_ready,
    log="gateway.log",
    after_ready=_where,
)
