"""Staff tokens: EdDSA signatures only the issuer can make, and the keys a service refuses to start with."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from shared import auth
from shared.settings import CommonSettings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_PLACEHOLDER = ROOT / "deploy" / "compose" / "staff-token.pub"
PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]+)-----(.+?)-----END \1-----", re.S)
# The identity point: every signature (R, S) with S·B = R verifies under it, e.g. R = B, S = 1.
IDENTITY = auth.PublicKey.from_public_bytes(b"\x01" + bytes(31))
IDENTITY_KEY = auth.public_pem(IDENTITY)


@pytest.fixture(scope="module")
def issuer() -> auth.PrivateKey:
    return auth.PrivateKey.generate()


def _settings(**values: object) -> CommonSettings:
    return CommonSettings.model_validate(values)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_token_names_hub_subject_and_roles_when_signed_by_the_issuer(issuer: auth.PrivateKey) -> None:
    token = auth.issue_staff_token(issuer, hub="mediso", subject="sato", roles=[auth.StaffRole.SCREENER])
    assert jwt.get_unverified_header(token)["alg"] == "EdDSA"
    assert auth.verify_staff_token(issuer.public_key(), token) == auth.StaffPrincipal(
        hub="mediso", subject="sato", roles=frozenset({auth.StaffRole.SCREENER})
    )


def test_roles_a_verifier_does_not_know_are_left_out_never_guessed(issuer: auth.PrivateKey) -> None:
    now = datetime.now(UTC)
    claims = {"hub": "mediso", "sub": "sato", "aud": auth.AUDIENCE, "exp": now + timedelta(minutes=5)}
    token = jwt.encode({**claims, "roles": ["analyst", "superuser"]}, issuer, algorithm=auth.ALGORITHM)
    assert auth.verify_staff_token(issuer.public_key(), token).roles == {auth.StaffRole.ANALYST}
    no_roles = jwt.encode(claims, issuer, algorithm=auth.ALGORITHM)
    assert not auth.verify_staff_token(issuer.public_key(), no_roles).may(auth.Action.READ)


def test_intake_refuses_an_issuer_key_that_is_not_the_pair_of_the_verification_key(issuer: auth.PrivateKey) -> None:
    other = auth.PrivateKey.generate()
    with pytest.raises(auth.KeyRefused, match="not the pair"):
        auth.issuer_key(auth.private_pem(other), None, verified_with=issuer.public_key())
    assert auth.fingerprint(
        auth.issuer_key(auth.private_pem(issuer), None, verified_with=issuer.public_key()).public_key()
    ) == auth.fingerprint(issuer.public_key())


def test_refuses_token_when_signed_with_another_key(issuer: auth.PrivateKey) -> None:
    token = auth.issue_staff_token(auth.PrivateKey.generate(), hub="mediso", subject="mallory")
    with pytest.raises(auth.InvalidToken, match="Signature verification failed"):
        auth.verify_staff_token(issuer.public_key(), token)


def test_refuses_token_when_its_claims_were_tampered_with(issuer: auth.PrivateKey) -> None:
    header, payload, signature = auth.issue_staff_token(issuer, hub="cariso", subject="staff").split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    forged = ".".join([header, _b64(json.dumps({**claims, "hub": "mediso"}).encode()), signature])
    with pytest.raises(auth.InvalidToken, match="Signature verification failed"):
        auth.verify_staff_token(issuer.public_key(), forged)


def test_refuses_token_when_hmac_signed_with_the_public_key(issuer: auth.PrivateKey) -> None:
    """The classic algorithm confusion: the public key, which everyone has, used as an HMAC secret."""
    claims = jwt.decode(auth.issue_staff_token(issuer, hub="mediso", subject="x"), options={"verify_signature": False})
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    signing_input = f"{header}.{_b64(json.dumps(claims).encode())}"
    mac = hmac.new(auth.public_pem(issuer.public_key()).encode(), signing_input.encode(), hashlib.sha256).digest()
    with pytest.raises(auth.InvalidToken, match="alg value is not allowed"):
        auth.verify_staff_token(issuer.public_key(), f"{signing_input}.{_b64(mac)}")


def test_refuses_token_when_expired(issuer: auth.PrivateKey) -> None:
    token = auth.issue_staff_token(issuer, hub="mediso", subject="sato", ttl=timedelta(seconds=-1))
    with pytest.raises(auth.InvalidToken, match="expired"):
        auth.verify_staff_token(issuer.public_key(), token)


def test_verification_key_reads_the_pem_inline_or_from_a_file(issuer: auth.PrivateKey, tmp_path: Path) -> None:
    pem = auth.public_pem(issuer.public_key())
    (tmp_path / "staff-token.pub").write_text(pem, encoding="utf-8")
    for settings in (_settings(auth_public_key=pem), _settings(auth_public_key_file=tmp_path / "staff-token.pub")):
        key = auth.verification_key(settings)
        assert auth.fingerprint(key) == auth.fingerprint(issuer.public_key())


def test_signing_key_reads_the_issuers_private_key_from_the_environment(issuer: auth.PrivateKey) -> None:
    key = auth.signing_key({"HUBNET_AUTH_PRIVATE_KEY": auth.private_pem(issuer)})
    assert auth.fingerprint(key.public_key()) == auth.fingerprint(issuer.public_key())
    with pytest.raises(auth.KeyRefused, match="HUBNET_AUTH_PRIVATE_KEY"):
        auth.signing_key({})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, r"HUBNET_AUTH_PUBLIC_KEY \(or HUBNET_AUTH_PUBLIC_KEY_FILE\) is not set"),
        ({"auth_public_key": "hubnet-local-development-secret-change-me"}, "is not a public key in PEM"),
        ({"auth_public_key": IDENTITY_KEY}, "weak key"),
        ({"auth_public_key_file": "/nonexistent/staff-token.pub"}, "HUBNET_AUTH_PUBLIC_KEY_FILE=/nonexistent"),
        ({"auth_public_key": IDENTITY_KEY, "auth_public_key_file": "x.pub"}, "both HUBNET_AUTH_PUBLIC_KEY and"),
        ({"auth_public_key_file": COMPOSE_PLACEHOLDER}, "placeholder committed in deploy/compose/staff-token.pub"),
        # The local stack's exemption covers committed placeholders only, never a missing or broken key.
        ({"environment": "local"}, "is not set"),
        ({"environment": "local", "auth_public_key": IDENTITY_KEY}, "weak key"),
    ],
)
def test_service_refuses_key_when_missing_malformed_weak_or_well_known(values: dict[str, object], message: str) -> None:
    with pytest.raises(auth.KeyRefused, match=message):
        auth.verification_key(_settings(**values))


def test_identity_key_would_accept_a_signature_made_without_any_private_key() -> None:
    """Why weak keys are refused: this forgery verifies under the identity point."""
    base_point = bytes.fromhex("58" + "66" * 31)
    IDENTITY.verify(base_point + (1).to_bytes(32, "little"), b"any claims at all")


def test_service_refuses_key_when_not_ed25519_or_private(issuer: auth.PrivateKey) -> None:
    p256 = ec.generate_private_key(ec.SECP256R1()).public_key()
    pem = p256.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    with pytest.raises(auth.KeyRefused, match="not an Ed25519 key"):
        auth.verification_key(_settings(auth_public_key=pem))
    with pytest.raises(auth.KeyRefused, match="holds a private key"):
        auth.verification_key(_settings(auth_public_key=auth.private_pem(issuer)))


def test_local_stack_accepts_a_placeholder_key_when_environment_is_local() -> None:
    key = auth.verification_key(_settings(auth_public_key_file=COMPOSE_PLACEHOLDER, environment="local"))
    assert auth.WELL_KNOWN_KEYS[auth.fingerprint(key)] == "deploy/compose/staff-token.pub"


def _committed_files() -> list[Path]:
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=30,
    ).stdout.decode()
    return [ROOT / name for name in listing.split("\0") if name and (ROOT / name).is_file()]


def _ed25519_key(label: str, body: str) -> auth.PublicKey | None:
    """The Ed25519 public key a PEM block holds or implies (a private key, a certificate), if any."""
    pem = f"-----BEGIN {label}-----\n" + textwrap.fill("".join(body.split()), 64) + f"\n-----END {label}-----\n"
    try:
        if label == "CERTIFICATE":
            key: object = x509.load_pem_x509_certificate(pem.encode()).public_key()
        elif "PRIVATE" in label:
            key = serialization.load_pem_private_key(pem.encode(), password=None).public_key()
        else:
            key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError):
        return None
    return key if isinstance(key, auth.PublicKey) else None


def test_every_key_committed_to_the_repository_is_on_the_well_known_list() -> None:
    found: dict[str, str] = {}
    for path in _committed_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for label, body in PEM_BLOCK.findall(text):
            key = _ed25519_key(label, body)
            where = str(path.relative_to(ROOT))
            if key is not None:
                assert auth.fingerprint(key) in auth.WELL_KNOWN_KEYS, f"{where}: a committed key not in WELL_KNOWN_KEYS"
                found[auth.fingerprint(key)] = where
    assert found == auth.WELL_KNOWN_KEYS, "WELL_KNOWN_KEYS names a key that is not (or not there) in the repository"


def _serve(service: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("HUBNET_")}
    return subprocess.run(
        [sys.executable, "-m", f"services.{service}", "serve"],
        env={**clean, "HUBNET_LOG_JSON": "false", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("service", "env", "message"),
    [
        ("intake", {}, "HUBNET_AUTH_PUBLIC_KEY (or HUBNET_AUTH_PUBLIC_KEY_FILE) is not set"),
        ("matching", {"HUBNET_AUTH_PUBLIC_KEY_FILE": str(COMPOSE_PLACEHOLDER)}, "is the placeholder committed in"),
        ("notify", {"HUBNET_AUTH_PUBLIC_KEY": "change-me-to-32-or-more-random-bytes"}, "is not a public key in PEM"),
    ],
)
def test_service_exits_naming_the_variable_when_key_is_unusable(
    service: str, env: dict[str, str], message: str
) -> None:
    result = _serve(service, **env)
    assert result.returncode != 0
    assert f"hubnet {service} refuses to start: " in result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
