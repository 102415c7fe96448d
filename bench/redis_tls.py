#!/usr/bin/env python3
"""bench/redis_tls.py: the Redis connection layer's cost, old against new, plain against TLS (issue 21).

Starts one redis-server listening on a plain port and a TLS port (certificates made with openssl in the output
directory), then runs bench/run with three targets interleaved run by run:
  baseline  --baseline BUILD_DIR's server (hiredis's async connection), redis://
  redis     this build (redis_link), redis://
  rediss    this build, rediss:// verified against the test CA
so that each ratio is measured within one run on the same Redis. Redis is stopped when it ends.

usage: bench/redis_tls.py --baseline BUILD_DIR [--reps 3] [--scenarios ac,d1] [--out DIR]
Needs build/broadcaster, build/bench/broadcaster-bench, redis-server with TLS and openssl. 127.0.0.1 only.
"""
import argparse
import os
import socket
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_certs(d):
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=bench CA")
    with open(os.path.join(d, "server.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out",
        "server.crt", "-days", "2", "-extfile", "server.ext")


def start_redis(certs):
    """One redis-server with a plain and a TLS port (certificates from make_certs): (process, plain, tls)."""
    plain, tls = free_port(), free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(plain), "--tls-port", str(tls), "--bind", "127.0.0.1",
         "--tls-cert-file", os.path.join(certs, "server.crt"), "--tls-key-file", os.path.join(certs, "server.key"),
         "--tls-ca-cert-file", os.path.join(certs, "ca.crt"), "--tls-auth-clients", "no", "--save", "",
         "--appendonly", "no", "--daemonize", "no", "--loglevel", "warning"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return redis, plain, tls


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", required=True, help="build directory of the old layer's server")
    ap.add_argument("--reps", default="3")
    ap.add_argument("--scenarios", default="ac,d1")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results", "redis-tls-" + time.strftime("%Y%m%d-%H%M%S")))
    a = ap.parse_args()
    out = os.path.abspath(a.out)
    certs = os.path.join(out, "certs")
    os.makedirs(certs, exist_ok=True)
    make_certs(certs)
    redis, plain, tls = start_redis(certs)
    try:
        time.sleep(0.5)
        if redis.poll() is not None:
            sys.exit("redis-server did not start")
        flags = "--broker redis --redis-url redis://127.0.0.1:%d" % plain
        tls_flags = "--broker redis --redis-url rediss://127.0.0.1:%d --redis-tls-ca-file %s" % (
            tls, os.path.join(certs, "ca.crt"))
        cmd = [os.path.join(ROOT, "bench", "run"), "--targets", "redis", "--baseline", a.baseline,
               "--variant", "baseline=" + flags, "--variant", "redis=" + flags, "--variant", "rediss=" + tls_flags,
               "--scenarios", a.scenarios, "--reps", a.reps, "--out", out]
        print(" ".join(cmd), file=sys.stderr, flush=True)
        return subprocess.call(cmd)
    finally:
        redis.terminate()
        redis.wait(10)


if __name__ == "__main__":
    sys.exit(main())
