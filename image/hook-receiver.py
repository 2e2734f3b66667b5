#!/usr/bin/env python3
"""A webhook receiver for image/boot-test.sh check 3: listens on 127.0.0.1:PORT, answers 200
to every POST and appends it to FILE as one JSON line {headers, body}.

    hook-receiver.py PORT FILE
    hook-receiver.py --verify SECRET FILE TYPE   # the first event of TYPE, its signatures checked

--verify checks both signatures (docs/webhooks.md): X-Wagate-Signature, HMAC-SHA256 keyed with
the secret string over "{timestamp}.{body}", and the Standard Webhooks webhook-signature,
keyed with the base64-decoded secret after whsec_ over "{id}.{timestamp}.{body}". Prints the
event and exits 0 when both match, 1 otherwise (or when no event of TYPE arrived).
"""
import base64
import hashlib
import hmac
import json
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer


def serve(port, path):
    class H(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with open(path, "a") as f:
                f.write(json.dumps({"headers": dict(self.headers.items()), "body": body.decode()}) + "\n")
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    HTTPServer(("127.0.0.1", port), H).serve_forever()


def verify(secret, path, kind):
    try:
        lines = open(path).read().splitlines()
    except FileNotFoundError:
        lines = []
    for line in lines:
        r = json.loads(line)
        h = {k.lower(): v for k, v in r["headers"].items()}
        body = r["body"].encode()
        event = json.loads(body)
        if event.get("type") != kind:
            continue
        ts = h["x-wagate-timestamp"]
        mac = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
        own = hmac.compare_digest(h["x-wagate-signature"], "v1,sha256=" + mac)
        key = base64.b64decode(secret.removeprefix("whsec_"))
        signed = h["webhook-id"].encode() + b"." + h["webhook-timestamp"].encode() + b"." + body
        std = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        standard = ("v1," + std) in h["webhook-signature"].split()
        print(f"webhook {kind}: {r['body'][:160]}")
        print(f"webhook {kind}: X-Wagate-Signature {'valid' if own else 'INVALID'}, "
              f"webhook-signature (Standard Webhooks) {'valid' if standard else 'INVALID'}")
        return 0 if own and standard else 1
    return 1


if __name__ == "__main__":
    if sys.argv[1] == "--verify":
        sys.exit(verify(sys.argv[2], sys.argv[3], sys.argv[4]))
    serve(int(sys.argv[1]), sys.argv[2])
