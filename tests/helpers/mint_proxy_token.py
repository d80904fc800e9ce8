"""Mint a proxy token as a headless IAP caller's `gcloud auth print-identity-token` does, for tests.

    python tests/helpers/mint_proxy_token.py SECRET_FILE SECONDS COUNTER_FILE

Prints an HS256 JWT whose payload is `{"aud": AUDIENCE, "iat": now, "exp": now + SECONDS}`,
signed with the secret in SECRET_FILE; `connect_proxy.py --require-proxy-token SECRET_FILE`
admits it until `exp`. Appends `<parent pid> <token>` to COUNTER_FILE on each call: how many
times each process fetched a token, and every token ever issued (for the "in no file, argv or
environment" checks). Standard library only, run by path: it is a run's proxy_token_command.
"""

import base64
import hashlib
import hmac
import json
import os
import sys
import time
from pathlib import Path

AUDIENCE = "iris-smoke-test-iap"
HEADER = {"alg": "HS256", "typ": "JWT"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: bytes, signed: str) -> str:
    return _b64(hmac.new(secret, signed.encode(), hashlib.sha256).digest())


def mint(secret: bytes, exp: int, now: int) -> str:
    signed = ".".join(_b64(json.dumps(part).encode()) for part in (HEADER, {"aud": AUDIENCE, "iat": now, "exp": exp}))
    return f"{signed}.{_signature(secret, signed)}"


def refusal(token: str, secret: bytes, now: float) -> str:
    """Why IAP would refuse `token` ("" when it is admitted): its signature, audience, expiry."""
    parts = token.split(".")
    if len(parts) != 3:
        return "not a JWT" if token else "empty token"
    if not hmac.compare_digest(parts[2], _signature(secret, f"{parts[0]}.{parts[1]}")):
        return "bad signature"
    try:
        payload = json.loads(_unb64(parts[1]))
    except ValueError:
        return "unreadable payload"
    if not isinstance(payload, dict) or payload.get("aud") != AUDIENCE:
        return "wrong audience"
    exp = payload.get("exp")
    if not isinstance(exp, int | float) or exp <= now:
        return "token expired"
    return ""


def main(argv: list[str]) -> int:
    secret_file, seconds, counter = argv
    now = int(time.time())
    token = mint(Path(secret_file).read_bytes().strip(), now + int(seconds), now)
    with open(counter, "a") as out:
        out.write(f"{os.getppid()} {token}\n")
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
