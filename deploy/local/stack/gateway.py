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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
from rich.console import Console

from deploy.local.stack import process
from deploy.local.stack.instance import ROOT, SERVICES, Instance, StackError
from shared import i18n

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
    "/v1/hubs/{hub}/consultations/{consultation_id}/withdrawal": {"POST": "intake"},
    "/v1/hubs/{hub}/supporters": {"GET": "matching"},
    "/v1/hubs/{hub}/supporters/{supporter_id}": {"PUT": "matching"},
}
"""Each public API path and, per method, the service that answers it (HEAD goes with GET)."""

PREFIXES: Final = {"/portal/": "intake", "/console/": "reporting"}
"""The applicants' portal and the staff console: every path under each prefix goes to its service."""


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


def _api_blocks() -> tuple[str, str]:
    """The method maps (http level) and the locations (server level) of the API paths."""
    maps, locations = [], []
    for index, (template, methods) in enumerate(API.items()):
        by_method = {**methods, **({"HEAD": methods["GET"]} if "GET" in methods else {})}
        entries = " ".join(f"{method} {service};" for method, service in sorted(by_method.items()))
        maps.append(f'    map $request_method $api_{index} {{ {entries} default ""; }}')
        locations.append(
            f"        location ~ {path_regex(template)} {{\n"
            f'            if ($api_{index} = "") {{ return 405; }}\n'
            f"            proxy_pass http://$api_{index};\n"
            "        }"
        )
    return "\n".join(maps), "\n".join(locations)


def render(
    *, listen: str, upstreams: Mapping[str, str], files: Files | None, openapi: Path, worker_user: str | None = None
) -> str:
    """An nginx.conf with the gateway's routes, proxying to `upstreams` (service name → host:port)."""
    servers = "\n".join(f"    upstream {name} {{ server {where}; keepalive 16; }}" for name, where in upstreams.items())
    api_maps, api_locations = _api_blocks()
    prefixes = "\n".join(
        f"        location {prefix} {{ proxy_pass http://{service}; }}" for prefix, service in PREFIXES.items()
    )
    allow_map = "\n".join(f'        "~{path_regex(template)}" "{allow(template)}";' for template in API)
    messages = i18n.in_every_locale(METHOD_NOT_ALLOWED)
    body = {"error": "method_not_allowed", "message": messages[i18n.DEFAULT_LOCALE], "messages": messages}
    not_allowed = json.dumps(body, ensure_ascii=False).replace("'", "\\'")  # inside nginx's single quotes
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
events {{ worker_connections 1024; }}
http {{
{http_files}
    client_max_body_size {MAX_BODY};
    server_tokens off;
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
        location = {HEALTH_PATH} {{ access_log off; default_type text/plain; return 200 "ok\\n"; }}
        # Intake is the front door: it answers any other path with its 404, in the caller's language.
        location ~ ^/({hidden})$ {{ rewrite ^ {NOT_PUBLIC_TARGET} break; proxy_pass http://intake; }}
        location = /openapi.json {{ default_type application/json; alias {openapi}; }}
        location ~ ^/openapi/({names})\\.json$ {{ proxy_pass http://$1/openapi.json; }}
{api_locations}
{prefixes}
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
    )


CLUSTER_PORT: Final = 8000
CLUSTER_DIRS: Final = (ROOT / "deploy" / "compose", ROOT / "deploy" / "k8s")
"""Where the gateway's files for Compose and for Kubernetes are committed: `gateway.conf` (the services by
their DNS names, on their default ports) and `openapi.json` (the origin's API)."""
CONTAINER_OPENAPI: Final = Path("/etc/nginx/openapi.json")


def cluster_config() -> str:
    ports = {name: importlib.import_module(f"services.{name}").SERVICE.default_port for name in SERVICES}
    upstreams = {name: f"{name}:{port}" for name, port in ports.items()}
    return render(listen=str(CLUSTER_PORT), upstreams=upstreams, files=None, openapi=CONTAINER_OPENAPI)


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

    key = auth.public_pem(auth.PrivateKey.generate().public_key())  # no request is served: any key will do
    documents = {}
    for name in SERVICES:
        app_module = importlib.import_module(f"services.{name}.app")
        settings_module = importlib.import_module(f"services.{name}.settings")
        settings_type = getattr(settings_module, f"{name.capitalize()}Settings")
        documents[name] = app_module.create_app(settings_type(auth_public_key=key)).openapi()
    return openapi_document(documents)


def cluster_files() -> dict[str, str]:
    """File name → content of what the Compose and Kubernetes gateways mount."""
    return {
        "gateway.conf": cluster_config(),
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
