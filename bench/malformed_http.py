#!/usr/bin/env python3
"""Malformed raw HTTP against a running wagate: garbage request lines, bad and huge headers,
truncated bodies, bad JSON, wrong content types, unknown routes and methods, bad auth and
slowloris-style partial sends, over raw TCP. Samples the daemon's RSS (VmRSS) every
--sample requests and prints a table; exits non-zero if the daemon dies, a complete and
parseable request gets anything but a 4xx JSON error (`{"error":{"code","message"}}`), or
RSS keeps growing (last sample more than --max-growth-kib above the median of the middle).

    bench/malformed-http.sh            # builds wagate, starts it on a temp dir, runs 100k
    bench/malformed_http.py --addr 127.0.0.1:8080 --pid <pid> --key <admin key> -n 100000
"""
import argparse
import json
import random
import socket
import statistics
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def alive(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return "State:\tZ" not in f.read()
    except FileNotFoundError:
        return False


def read_response(s, timeout):
    """Read one HTTP response (headers + Content-Length body, or until close)."""
    s.settimeout(timeout)
    buf = b""
    try:
        while b"\r\n\r\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                return buf or None
            buf += chunk
        head, _, body = buf.partition(b"\r\n\r\n")
        length = None
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                length = int(v.strip())
        while length is not None and len(body) < length:
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
        return head + b"\r\n\r\n" + body
    except (socket.timeout, ConnectionResetError):
        return buf or None


def parse(resp):
    head, _, body = resp.partition(b"\r\n\r\n")
    line = head.split(b"\r\n", 1)[0].split(b" ")
    status = int(line[1]) if len(line) > 1 and line[1].isdigit() else 0
    headers = {}
    for h in head.split(b"\r\n")[1:]:
        k, _, v = h.partition(b":")
        headers[k.strip().lower().decode("latin-1")] = v.strip().decode("latin-1")
    return status, headers, body


def is_error_json(body):
    try:
        v = json.loads(body)
        return isinstance(v["error"]["code"], str) and isinstance(v["error"]["message"], str)
    except Exception:
        return False


def junk(rng, n):
    return bytes(rng.randrange(256) for _ in range(n))


def make_case(i, rng, host, key):
    """(category, bytes to send, expect): expect 'json4xx' (a parseable complete request:
    a 4xx JSON error), 'http4xx' (hyper refuses it before the router: a 4xx or a close),
    'any' (incomplete: no answer owed), 'any2xx4xx' (a valid request with a big but
    acceptable header: no 5xx)."""
    auth = f"Authorization: Bearer {key}\r\n"
    kind = i % 12
    if kind == 0:
        return "garbage request line", junk(rng, rng.randrange(1, 200)) + b"\r\n\r\n", "http4xx"
    if kind == 1:
        name = rng.choice([b"Bad Header", b"X\x00Y", b"(x)", b"", b"\xff\xfe"])
        return ("bad header", b"GET /api/health HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"
                + name + b": v\r\nNoColonHere\r\n\r\n", "http4xx")
    if kind == 2:
        size = rng.choice([9_000, 70_000, 500_000])
        return ("huge header", f"GET /api/sessions HTTP/1.1\r\nHost: {host}\r\n{auth}X-Big: ".encode()
                + b"a" * size + b"\r\nConnection: close\r\n\r\n", "http4xx" if size > 400_000 else "any2xx4xx")
    if kind == 3:
        body = b'{"id":"abc' 
        return ("truncated body", f"POST /api/sessions HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\nContent-Length: 200\r\n\r\n".encode()
                + body, "any")
    if kind == 4:
        body = rng.choice([b"{", b"[1,2", b'{"id":}', b"\xff\xfe", b'{"id":"x"}garbage', b"null", b'{"id":1}', junk(rng, 50)])
        return ("bad JSON", f"POST /api/sessions HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body, "json4xx")
    if kind == 5:
        ct = rng.choice(["text/plain", "application/x-www-form-urlencoded", "application/xml", "", "json", "multipart/form-data; boundary=zz"])
        body = b'{"id":"s1"}'
        path = rng.choice(["/api/sessions", "/api/keys", "/api/webhooks", "/api/sessions/default/messages/text"])
        return ("wrong content type", f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: {ct}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body, "json4xx")
    if kind == 6:
        path = rng.choice(["/nope", "/api/../../etc/passwd", "/api/sessions/%ff%fe", "/api/sessions/" + "a" * 3000, "/api//sessions", "/api/sessions/default/messages/%00"])
        return ("unknown route", f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n".encode(), "json4xx")
    if kind == 7:
        m = rng.choice(["PATCH", "TRACE", "FOO", "PUT"])
        return ("wrong method", f"{m} /api/health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode(), "json4xx")
    if kind == 8:
        a = rng.choice(["", "Authorization: Bearer nope\r\n", "Authorization: Basic Zm9vOmJhcg==\r\n", "Authorization: Bearer \r\n", "Authorization: Bearer " + "k" * 5000 + "\r\n"])
        return ("bad auth", f"GET /api/sessions HTTP/1.1\r\nHost: {host}\r\n{a}Connection: close\r\n\r\n".encode(), "json4xx")
    if kind == 9:
        body = b"x" * rng.choice([70_000, 1_000_000])
        return ("body over the limit", f"POST /api/sessions HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body, "json4xx")
    if kind == 10:
        te = rng.choice([b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
                         b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                         b"Content-Length: -1\r\n\r\n", b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab"])
        return ("bad framing", f"POST /api/sessions HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\n".encode() + te, "http4xx")
    body = json.dumps({"to": rng.choice(["", "abc", "+1", "x@y@z", "1" * 40]), "text": "hi"}).encode()
    return ("invalid send", f"POST /api/sessions/default/messages/text HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body, "json4xx")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("-n", type=int, default=100_000)
    ap.add_argument("--sample", type=int, default=5_000)
    ap.add_argument("--slowloris", type=int, default=200, help="partial-send connections held open")
    ap.add_argument("--slowloris-secs", type=float, default=20.0)
    ap.add_argument("--max-growth-kib", type=int, default=8 * 1024)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    host_, port = a.addr.rsplit(":", 1)
    rng = random.Random(a.seed)
    samples = [(0, rss_kib(a.pid))]
    stats = {}
    bad = []
    t0 = time.time()

    def note(cat, outcome):
        stats.setdefault(cat, {}).setdefault(outcome, 0)
        stats[cat][outcome] += 1

    for i in range(1, a.n + 1):
        cat, data, expect = make_case(i, rng, a.addr, a.key)
        s = socket.create_connection((host_, int(port)))
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        if expect == "any":
            # Incomplete: half the time give up at once, half the time close the write side.
            if i % 2:
                try:
                    s.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                resp = read_response(s, 5)
            else:
                resp = None
            note(cat, "closed" if resp is None else f"{parse(resp)[0]}")
            s.close()
        else:
            resp = read_response(s, 10)
            s.close()
            if resp is None:
                note(cat, "closed")
                if expect == "json4xx":
                    bad.append((cat, "no answer", data[:120]))
            else:
                status, headers, body = parse(resp)
                json_err = is_error_json(body)
                note(cat, f"{status}{' json' if json_err else ''}")
                ok = {
                    "json4xx": 400 <= status < 500 and json_err,
                    "http4xx": 400 <= status < 500,
                    "any2xx4xx": status < 500,
                }[expect]
                if not ok:
                    bad.append((cat, f"{status} {body[:200]!r}", data[:120]))
        if i % a.sample == 0:
            if not alive(a.pid):
                print(f"wagate died after {i} requests", file=sys.stderr)
                sys.exit(1)
            samples.append((i, rss_kib(a.pid)))
    elapsed = time.time() - t0

    # Slowloris: many connections that send part of a request line and headers, a byte now
    # and then; the daemon must stay up, keep answering others, and close them on its own.
    conns = []
    for _ in range(a.slowloris):
        c = socket.create_connection((host_, int(port)))
        c.sendall(b"POST /api/sessions HTTP/1.1\r\nHost: x\r\nX-A: ")
        conns.append(c)
    t_slow = time.time()
    closed_by_server = 0
    while time.time() - t_slow < a.slowloris_secs:
        for c in list(conns):
            try:
                c.sendall(b"a")
            except OSError:
                conns.remove(c)
                closed_by_server += 1
        time.sleep(1)
    probe = socket.create_connection((host_, int(port)))
    probe.sendall(f"GET /api/health HTTP/1.1\r\nHost: {a.addr}\r\nConnection: close\r\n\r\n".encode())
    pr = read_response(probe, 10)
    probe_ok = pr is not None and parse(pr)[0] == 200
    # Stop sending; see whether the server drops the idle partial requests by itself.
    t_idle = time.time()
    for c in conns:
        c.settimeout(0.05)
    waited_closed = 0
    while conns and time.time() - t_idle < a.slowloris_secs * 3:
        for c in list(conns):
            try:
                if c.recv(1024) == b"":
                    conns.remove(c); c.close(); waited_closed += 1
            except socket.timeout:
                pass
            except OSError:
                conns.remove(c); c.close(); waited_closed += 1
        time.sleep(0.5)
    idle_left = len(conns)
    held_rss = rss_kib(a.pid)
    for c in conns:
        c.close()
    time.sleep(2)

    print(f"\nmalformed HTTP: {a.n} requests in {elapsed:.1f} s ({a.n / elapsed:.0f}/s), one connection each")
    print(f"{'category':24} outcomes (status[ json] or closed: count)")
    for cat in sorted(stats):
        print(f"{cat:24} " + ", ".join(f"{k}: {v}" for k, v in sorted(stats[cat].items())))
    print(f"\nslowloris: {a.slowloris} partial requests fed a byte a second for {a.slowloris_secs:.0f} s: "
          f"{closed_by_server} closed by wagate meanwhile; health during it: {'200' if probe_ok else 'FAILED'}; "
          f"after feeding stopped, {waited_closed} closed by wagate within {a.slowloris_secs * 3:.0f} s, {idle_left} still open; "
          f"VmRSS with them open {held_rss} KiB, {rss_kib(a.pid)} KiB after the client closed them")
    print(f"\n{'requests':>9} {'VmRSS KiB':>10}")
    for n, r in samples:
        print(f"{n:9} {r:10}")
    first, peak, last = samples[0][1], max(r for _, r in samples), samples[-1][1]
    mid = statistics.median(r for _, r in samples[1:-1]) if len(samples) > 2 else last
    print(f"RSS first {first} KiB, peak {peak} KiB, last {last} KiB, median after start {mid:.0f} KiB")
    fail = False
    if bad:
        fail = True
        print(f"\n{len(bad)} answers not as expected; first 10:")
        for b in bad[:10]:
            print("  ", b)
    if not probe_ok:
        fail = True
    if last - mid > a.max_growth_kib:
        fail = True
        print(f"RSS grew {last - mid:.0f} KiB beyond the median: not flat")
    if not alive(a.pid):
        fail = True
        print("wagate is gone")
    sys.exit(1 if fail else 0)


if __name__ == "__main__":
    main()
