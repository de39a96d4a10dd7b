"""What a Docker API on tcp://HOST:PORT answers; run inside a lab host's network namespace.

    python docker_tls_probe.py tcp://127.0.0.1:2376 CLIENT_DIR

Prints one JSON document: the ovsnet Docker facade's answer with the client certificate in
CLIENT_DIR (ca.pem, cert.pem, key.pem), the facade without TLS, a plain HTTP request, and a TLS
handshake that trusts the CA but offers no client certificate.
"""

from __future__ import annotations

import http.client
import json
import ssl
import sys
from pathlib import Path
from urllib.parse import urlparse

from ovsnet import docker as ovsnet_docker
from ovsnet.errors import OvsnetError


def facade(url: str, client_dir: Path | None) -> dict:
    try:
        with ovsnet_docker.connect(url, client_dir) as client:
            info = client.info()
    except OvsnetError as exc:
        return {"error": exc.one_line()}
    return {"server_version": info.server_version, "api_version": info.api_version}


def plain_http(host: str, port: int) -> dict:
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("GET", "/version")
        response = conn.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as exc:
        return {"error": type(exc).__name__}
    finally:
        conn.close()
    return {"status": response.status, "answered_version": b"ApiVersion" in body}


def tls_without_client_certificate(host: str, port: int, ca: Path) -> dict:
    context = ssl.create_default_context(cafile=str(ca))
    context.check_hostname = False  # the server is verified by its CA; the point is the client
    conn = http.client.HTTPSConnection(host, port, context=context, timeout=10)
    try:
        conn.request("GET", "/version")
        response = conn.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as exc:  # ssl.SSLError is an OSError
        return {"error": type(exc).__name__, "detail": str(exc)}
    finally:
        conn.close()
    return {"status": response.status, "answered_version": b"ApiVersion" in body}


def main(url: str, client_dir: str) -> dict:
    parsed = urlparse(url)
    client = Path(client_dir)
    return {
        "facade": facade(url, client),
        "facade_without_tls": facade(url, None),
        "plain_http": plain_http(parsed.hostname, parsed.port),
        "tls_without_client_certificate": tls_without_client_certificate(
            parsed.hostname, parsed.port, client / "ca.pem"
        ),
    }


if __name__ == "__main__":
    print(json.dumps(main(*sys.argv[1:])))
