#!/usr/bin/env python3
"""Seeds the fuzz corpora from the project's own cases: the raw requests of
conformance/http/*.case, the config cases and examples, and a few heads and
chunked bodies. Run from anywhere; existing corpus files are kept."""
import hashlib
import pathlib
import re

FUZZ = pathlib.Path(__file__).resolve().parent
ROOT = FUZZ.parent


def add(target, data):
    d = FUZZ / "corpus" / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


def request_bytes(lines):
    """The escapes of conformance/http_golden.rs."""
    out = bytearray()
    for line in lines:
        crlf = not line.endswith("\\c")
        if not crlf:
            line = line[:-2]
        i = 0
        while i < len(line):
            c = line[i]
            if c != "\\":
                out += c.encode()
                i += 1
                continue
            n = line[i + 1 : i + 2]
            if n == "x":
                out.append(int(line[i + 2 : i + 4], 16))
                i += 4
                continue
            out += {"r": b"\r", "n": b"\n", "t": b"\t"}.get(n, n.encode())
            i += 2
        if crlf:
            out += b"\r\n"
    return bytes(out)


for case in sorted((ROOT / "conformance/http").glob("*.case")):
    text = case.read_text()
    body = text.split("request:\n", 1)[1].split("expect:", 1)[0]
    raw = request_bytes(body.rstrip("\n").split("\n"))
    add("request_head", raw)
    first = raw.split(b"\r\n", 1)[0].split(b" ")
    if len(first) > 1:
        add("request_target", first[1])

# The smuggling corpus: heads for the head parser, what follows a chunked
# head for the decoder.
def corpus_bytes(text):
    out = bytearray()
    i = 0
    while i < len(text):
        if text.startswith("{a*", i):
            end = text.index("}", i)
            out += b"a" * int(text[i + 3 : end])
            i = end + 1
        elif text[i] == "\\":
            n = text[i + 1]
            if n == "x":
                out.append(int(text[i + 2 : i + 4], 16))
                i += 4
            else:
                out += {"r": b"\r", "n": b"\n", "t": b"\t", "\\": b"\\"}[n]
                i += 2
        else:
            out += text[i].encode()
            i += 1
    return bytes(out)


for line in (ROOT / "conformance/smuggling/cases.txt").read_text().splitlines():
    if line.startswith("bytes = "):
        raw = corpus_bytes(line[len("bytes = ") :])
        add("request_head", raw)
        head, sep, body = raw.partition(b"\r\n\r\n")
        if sep and b"chunked" in head.lower():
            add("chunked", b"\x00" + body)

for seed in [
    b"POST /a?b=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: keep-alive, X-P\r\nX-P: 1\r\n\r\nhello",
    b"PUT /u HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
    b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n",
    b"GET http://h:8080/p?q HTTP/1.1\r\nHost: other\r\n\r\n",
    b"GET / HTTP/1.0\r\nKeep-Alive: 5\r\nTE: trailers\r\n\r\n",
]:
    add("request_head", seed)

for seed in [
    b"\x03\x01\x05\x09" + b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    b"\x02\x02\x07" + b"1;ext=1\r\na\r\n0\r\nTrailer: x\r\n\r\nNEXT",
    b"\x00" + b"A\r\n0123456789\r\n0\r\n\r\n",
    b"\x01\x04" + b"ffffffffffffffff\r\n",
]:
    add("chunked", seed)

for seed in [
    b"\x00HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: a\r\n\r\nhello",
    b"\x02HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close, X-A\r\nX-A: 1\r\n\r\n",
    b"\x01HTTP/1.0 304 Not Modified\r\nContent-Length: 10\r\nKeep-Alive: timeout=5\r\n\r\n",
    b"\x04HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    b"\x08HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
]:
    add("response_head", seed)

for conf in sorted(ROOT.glob("conformance/config/**/*.conf")) + sorted(ROOT.glob("examples/*.conf")):
    add("config_text", conf.read_bytes())
for js in sorted(ROOT.glob("conformance/config/**/*.json")) + sorted(ROOT.glob("examples/*.json")):
    add("config_json", js.read_bytes())
