#!/usr/bin/env python3
"""A minimal client of the callback listener for the integration tests (stdlib only).

    callback_client.py HOST:PORT PATH [--token T] [--auth HEADER] [--body TEXT]
                       [--body-size N] [--chunked] [--tls CAFILE]

Prints the status code and the body of the answer on one line ("000 <error>" when the
connection failed without one)."""
import argparse
import http.client
import ssl
import sys


def call(addr, path, token=None, auth=None, body=b"", chunked=False, tls=None, timeout=30):
    host, port = addr.rsplit(":", 1)
    if tls:
        ctx = ssl.create_default_context(cafile=tls)
        conn = http.client.HTTPSConnection(host, int(port), timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = "Bearer " + token
    if auth is not None:
        headers["Authorization"] = auth
    try:
        if chunked:
            def gen():
                for i in range(0, len(body), 65536):
                    yield body[i:i + 65536]
            conn.request("POST", path, body=gen(), headers=headers, encode_chunked=True)
        else:
            conn.request("POST", path, body=body, headers=headers)
        r = conn.getresponse()
        return r.status, r.read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as e:
        return 0, type(e).__name__
    finally:
        conn.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("addr")
    p.add_argument("path")
    p.add_argument("--token")
    p.add_argument("--auth")
    p.add_argument("--body", default="")
    p.add_argument("--body-size", type=int)
    p.add_argument("--chunked", action="store_true")
    p.add_argument("--tls")
    a = p.parse_args()
    body = a.body.encode()
    if a.body_size is not None:
        body = b'{"checksum": "' + b"x" * a.body_size + b'"}'
    status, text = call(a.addr, a.path, a.token, a.auth, body, a.chunked, a.tls)
    print("%03d %s" % (status, text))


if __name__ == "__main__":
    sys.exit(main())
