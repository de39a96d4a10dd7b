"""JSON-RPC over a unix or TCP stream socket, as OVSDB and the OVS daemons' control sockets
speak it (RFC 7047 framing: one JSON value after another), parsed by the stdlib's C decoder.

NOTE(perf): the `ovs` library's parser is compiled only in Debian's python3-openvswitch; the
wheel on PyPI falls back to pure Python, which made `status` at 1,000 peers 5.7x `ovs-vsctl
list Interface` in a plain `pip install`. The stdlib's `json` is C everywhere. Socket errors
and timeouts are raised as OSError for the caller to word.

Place: docs/architecture.md, "Layers": facade layer (the wire format under ovsdb/ and
ovs_daemons.py).
"""

from __future__ import annotations

import json
import socket


def call(address: str, method: str, params: list, timeout: float) -> dict:
    """One request to `unix:PATH` or `tcp:HOST:PORT` and its reply message; OSError on any
    socket failure, including no answer within `timeout` seconds of a read."""
    request = {"id": 0, "method": method, "params": params}
    with _open_stream(address, timeout) as sock:
        sock.sendall(json.dumps(request).encode())
        return _read_reply(sock, request_id=0)


def _open_stream(address: str, timeout: float) -> socket.socket:
    kind, _, target_text = address.partition(":")
    if kind == "unix":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        target: str | tuple[str, int] = target_text
    elif kind == "tcp":
        host, _, port = target_text.rpartition(":")
        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        target = (host.strip("[]"), int(port))
    else:
        raise OSError(0, f"unsupported OVSDB address {address!r} (use unix:, tcp: or ssl:)")
    sock.settimeout(timeout)
    try:
        sock.connect(target)
    except OSError:
        sock.close()
        raise
    return sock


def _read_reply(sock: socket.socket, request_id: int) -> dict:
    """Read JSON-RPC messages until the reply to request_id (answering echo requests)."""
    decoder = json.JSONDecoder()
    chunks: list[bytes] = []
    while True:
        chunk = sock.recv(1 << 18)
        if not chunk:
            raise OSError(0, "the other side closed the connection")
        chunks.append(chunk)
        # Every message ends with "}": decode only then, not at each chunk of a big reply.
        if not chunk.rstrip().endswith(b"}"):
            continue
        text = b"".join(chunks).decode()
        while text:
            try:
                message, end = decoder.raw_decode(text)
            except ValueError:
                break  # the "}" closed something inside a message that is not complete yet
            text = text[end:].lstrip()
            if message.get("id") == request_id and "method" not in message:
                return message
            if message.get("method") == "echo":
                answer = {"id": message["id"], "result": message["params"], "error": None}
                sock.sendall(json.dumps(answer).encode())
        chunks = [text.encode()] if text else []
