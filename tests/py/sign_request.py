#!/usr/bin/env python3
"""An independent implementation of the vendor's signing recipe, used by tests/tests/client_sim.rs.

Reads a JSON body on stdin, re-serialises it the way the vendor's Python sample does (json.dumps with its default
", " and ": " separators), signs HASH(secretKey&body=<body>&createTs=<ts>&requestID=<id>&uuid=<uuid>) in uppercase
hex, POSTs exactly those bytes, and prints one JSON line: the HTTP status, the response body, and whether the
response's own signature checks out under the same recipe.

Only the standard library is used: json, hashlib, urllib.
"""

import argparse
import hashlib
import json
import sys
import urllib.error
import urllib.request


def sign(secret, body, create_ts, request_id, uuid, algorithm):
    plain = secret.encode() + b"&body=" + body + b"&createTs=" + create_ts.encode() + \
        b"&requestID=" + request_id.encode() + b"&uuid=" + uuid.encode()
    h = hashlib.sha256() if algorithm == "SHA256" else hashlib.md5()
    h.update(plain)
    return h.hexdigest().upper()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True, help="full endpoint URL")
    p.add_argument("--uuid", required=True)
    p.add_argument("--secret", required=True)
    p.add_argument("--algorithm", default="MD5", choices=["MD5", "SHA256"])
    p.add_argument("--create-ts", required=True)
    p.add_argument("--request-id", required=True)
    p.add_argument("--raw-utf8", action="store_true", help="json.dumps(..., ensure_ascii=False)")
    a = p.parse_args()

    payload = json.loads(sys.stdin.read())
    body = json.dumps(payload, ensure_ascii=not a.raw_utf8).encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "requestId": a.request_id,  # the vendor sample's spelling; header names are case-insensitive
        "uuid": a.uuid,
        "createTs": a.create_ts,
        "sign": sign(a.secret, body, a.create_ts, a.request_id, a.uuid, a.algorithm),
        "algorithm": a.algorithm,
    }
    req = urllib.request.Request(a.url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            status, raw, rh = r.status, r.read(), r.headers
    except urllib.error.HTTPError as e:
        status, raw, rh = e.code, e.read(), e.headers
    resp_sign_ok = False
    if rh.get("sign"):
        expected = sign(a.secret, raw, rh.get("createTs", ""), rh.get("requestID", ""), rh.get("uuid", ""),
                        (rh.get("algorithm") or "MD5").upper())
        resp_sign_ok = expected == rh.get("sign").upper()
    print(json.dumps({"status": status, "body": json.loads(raw or b"null"), "response_sign_ok": resp_sign_ok,
                      "sent_body": body.decode("utf-8")}))


if __name__ == "__main__":
    main()
