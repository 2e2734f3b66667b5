#!/usr/bin/env python3
"""HTTPS to wagate pinned to its certificate's SHA-256 fingerprint (image/boot-test.sh).

    pinned.py METHOD URL FINGERPRINT [--key KEY] [--json BODY] [--out FILE]

Connects without trusting any CA, compares the SHA-256 of the certificate the server
presented on this very connection with FINGERPRINT (hex pairs, colons optional, as wagate's
screen and log show it), and only then sends the request. Prints `STATUS` on the first line,
then the body (or writes the body to FILE). Exit 0 for any HTTP answer, 3 for a fingerprint
mismatch, 4 when the server cannot be reached.
"""
import argparse
import hashlib
import os
import http.client
import socket
import ssl
import sys
from urllib.parse import urlsplit


def main():
    p = argparse.ArgumentParser()
    p.add_argument("method")
    p.add_argument("url")
    p.add_argument("fingerprint")
    p.add_argument("--key")
    p.add_argument("--json")
    p.add_argument("--out")
    p.add_argument("--timeout", type=float, default=20)
    a = p.parse_args()
    want = a.fingerprint.replace(":", "").lower()
    u = urlsplit(a.url)
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection(u.hostname, u.port or 443, context=ctx, timeout=a.timeout)
    try:
        conn.connect()
    except (OSError, socket.timeout) as e:
        print(f"unreachable: {e}", file=sys.stderr)
        return 4
    got = hashlib.sha256(conn.sock.getpeercert(binary_form=True)).hexdigest()
    if got != want:
        print(f"certificate fingerprint {got} is not the pinned {want}", file=sys.stderr)
        return 3
    headers = {}
    if a.key:
        headers["Authorization"] = f"Bearer {a.key}"
    body = None
    if a.json is not None:
        body = a.json.encode()
        headers["Content-Type"] = "application/json"
    try:
        conn.request(a.method, u.path + (f"?{u.query}" if u.query else ""), body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
    except (OSError, socket.timeout, http.client.HTTPException) as e:
        print(f"request failed: {e}", file=sys.stderr)
        return 4
    try:
        print(r.status, flush=True)
        if a.out:
            with open(a.out, "wb") as f:
                f.write(data)
        else:
            sys.stdout.write(data.decode(errors="replace") + "\n")
            sys.stdout.flush()
    except BrokenPipeError:
        # The caller read only the status line (`| head -1`): not an error.
        os._exit(0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
