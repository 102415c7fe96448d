"""The web console: built-in files, the --console-dir override's rules, no CORS, and where --dev listens.

Every path that tries to leave the console is asked for in both modes (the files built into the binary, and an
override directory), spelled every way we know: absolute, '//', '%2F', '%2e%2e', double-encoded, backslashes,
'..' after a real folder, a symlink pointing out, a directory. The requests go over a raw socket so that no
client library normalises the path first.
"""

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
import requests

from conftest import API_KEY, BASE, BINARY, ROOT, SECRET, Server, clean_env, http_raw, start_server

SECRET_MARK = "outside-the-console-7f3a"  # in a file next to the override directory, never to be served
PAGE = ROOT / "web" / "console"
FILES = {  # name -> Content-Type
    "index.html": "text/html; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
    "broadcaster.js": "text/javascript; charset=utf-8",
}

# Paths after {BASE}/console that must never leave it. The secret.txt ones climb out of the override directory
# to the folder holding secret.txt; the /etc/passwd ones climb to the root whatever the working directory is.
UP = "../" * 12
TRAVERSALS = [
    "//etc/passwd",
    "//proc/self/environ",
    "/%2Fetc%2Fpasswd",
    "/%2fproc%2fself%2fenviron",
    "/%2e%2e/secret.txt",
    "/%2e%2e%2fsecret.txt",
    "/" + "%2e%2e/" * 12 + "etc/passwd",
    "/%252e%252e/secret.txt",
    "/%252e%252e%252fsecret.txt",
    "/%252Fetc%252Fpasswd",
    "/..%5csecret.txt",
    "/..\\secret.txt",
    "/sub\\..\\..\\secret.txt",
    "/../secret.txt",
    "/sub/../../secret.txt",
    "/sub/" + UP + "etc/passwd",
    "/sub/%2e%2e/%2e%2e/secret.txt",
    "/./../secret.txt",
    "/leak.txt",         # symlink to ../secret.txt
    "/passwd",           # symlink to /etc/passwd
    "/up/secret.txt",    # symlink to the parent folder
    "/sub",              # a directory
    "/sub/",
    "/.hidden",
    "/%00index.html",
]


def make_console_dir(base: Path) -> Path:
    (base / "secret.txt").write_text(SECRET_MARK)
    d = base / "console"
    (d / "sub").mkdir(parents=True)
    for name in ("index.html", "console.css", "console.js"):
        (d / name).write_bytes((PAGE / name).read_bytes())
    (d / "broadcaster.js").write_text("export class Broadcaster {}\nexport class BroadcasterError extends Error {}\n")
    (d / "sub" / "real.js").write_text("// a real file in a real folder\n")
    (d / ".hidden").write_text(SECRET_MARK)
    (d / "leak.txt").symlink_to(base / "secret.txt")
    (d / "passwd").symlink_to("/etc/passwd")
    (d / "up").symlink_to(base, target_is_directory=True)
    return d


@pytest.fixture(scope="module")
def console_dir(tmp_path_factory) -> Path:
    return make_console_dir(tmp_path_factory.mktemp("console-override"))


@pytest.fixture(scope="module")
def embedded():
    srv = start_server("--console")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def override(console_dir):
    srv = start_server("--console", "--console-dir", str(console_dir))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def dev():
    srv = start_server("--dev", secrets=False)
    yield srv
    srv.stop()


def get(srv: Server, path: str, headers: str = "") -> tuple[int, dict, bytes]:
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: https://evil.example\r\n{headers}Connection: close\r\n\r\n"
    return http_raw(srv.port, request.encode("latin-1"))


def assert_no_cors(headers: dict, what: str):
    assert "access-control-allow-origin" not in headers, f"{what}: a foreign web page could read this: {headers}"


@pytest.fixture(params=["embedded", "override"])
def mode(request):
    return request.param, request.getfixturevalue(request.param)


# ---------------------------------------------------------------------------------------------------------------
# Traversal, in both modes


@pytest.mark.parametrize("rest", TRAVERSALS)
def test_traversal_is_refused(mode, rest):
    name, srv = mode
    status, headers, body = get(srv, f"{BASE}/console{rest}")
    text = body.decode("latin-1")
    assert status == 404, f"{name} {rest}: {status} {text[:200]!r}"
    assert "root:" not in text and SECRET_MARK not in text and SECRET not in text, f"{name} {rest}: {text[:200]!r}"
    assert_no_cors(headers, f"{name} {rest}")
    assert srv.alive()


def test_proc_environ_never_leaks_secrets(mode):
    name, srv = mode
    for rest in ("//proc/self/environ", "/%2Fproc%2Fself%2Fenviron", "/" + "%2e%2e/" * 12 + "proc/self/environ"):
        status, headers, body = get(srv, f"{BASE}/console{rest}")
        assert status == 404 and SECRET.encode() not in body and API_KEY.encode() not in body, (name, rest, body[:200])
        assert_no_cors(headers, f"{name} {rest}")


def test_override_serves_a_file_in_a_real_folder(override):
    status, headers, body = get(override, f"{BASE}/console/sub/real.js")
    assert status == 200 and body == b"// a real file in a real folder\n", (status, body)
    assert headers["content-type"] == "text/javascript; charset=utf-8"
    assert_no_cors(headers, "sub/real.js")


def test_embedded_mode_never_reads_the_working_directory(tmp_path):
    # A secret.txt and an index.html where the server runs: the built-in console serves neither.
    (tmp_path / "secret.txt").write_text(SECRET_MARK)
    (tmp_path / "index.html").write_text(SECRET_MARK)
    (tmp_path / "sub").mkdir()
    env = clean_env(JWT_SECRET=SECRET, API_KEYS=API_KEY)
    argv = [str(BINARY), "--port", "0", "--host", "127.0.0.1", "--console"]
    proc = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True)
    try:
        port = None
        deadline = time.monotonic() + 10
        while port is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            m = re.search(r"listening on [0-9.]+:(\d+)", line or "")
            port = int(m.group(1)) if m else None
        assert port, "no listening line"
        for rest in ("/secret.txt", "/sub/../secret.txt", "/", "/index.html"):
            status, headers, body = http_raw(port, f"GET {BASE}/console{rest} HTTP/1.1\r\nHost: x\r\n"
                                                   "Connection: close\r\n\r\n".encode())
            assert SECRET_MARK.encode() not in body, (rest, status, body[:200])
            if rest in ("/", "/index.html"):
                assert status == 200 and body == (PAGE / "index.html").read_bytes(), (rest, status)
            else:
                assert status == 404, (rest, status)
    finally:
        proc.terminate()
        proc.wait(5)


# ---------------------------------------------------------------------------------------------------------------
# The real files: Content-Type, ETag and 304, Cache-Control, no CORS


@pytest.mark.parametrize("file", sorted(FILES))
def test_files_are_served_with_type_etag_and_304(mode, console_dir, file):
    name, srv = mode
    status, headers, body = get(srv, f"{BASE}/console/{file}")
    assert status == 200, (name, file, status, body[:200])
    assert headers["content-type"] == FILES[file], (name, file, headers)
    assert headers.get("cache-control") == "no-cache", headers
    assert headers.get("x-content-type-options") == "nosniff", headers
    assert_no_cors(headers, f"{name} {file}")
    etag = headers.get("etag", "")
    assert re.fullmatch(r'"[\w-]+"', etag), f"{name} {file}: ETag {etag!r}"
    if file == "broadcaster.js":
        assert b"Broadcaster" in body
    elif name == "embedded":
        assert body == (PAGE / file).read_bytes(), f"the built-in {file} differs from web/console/{file}"
    else:
        assert body == (console_dir / file).read_bytes()
    # The same ETag again, and 304 without a body when the client has it (also in a list, or weak).
    assert get(srv, f"{BASE}/console/{file}")[1]["etag"] == etag
    for inm in (etag, f'"nope", W/{etag}', "*"):
        status, h304, body304 = get(srv, f"{BASE}/console/{file}", f"If-None-Match: {inm}\r\n")
        assert status == 304 and body304 == b"" and h304.get("etag") == etag, (name, file, inm, status, h304)
        assert_no_cors(h304, f"{name} {file} 304")
    status, _, body = get(srv, f"{BASE}/console/{file}", 'If-None-Match: "something-else"\r\n')
    assert status == 200 and body


def test_index_is_served_at_the_folder_and_the_bare_path_redirects(mode):
    name, srv = mode
    status, headers, body = get(srv, f"{BASE}/console/")
    assert status == 200 and headers["content-type"] == FILES["index.html"] and b"<html" in body, (name, status)
    assert_no_cors(headers, name)
    status, headers, _ = get(srv, f"{BASE}/console")
    assert status == 301 and headers["location"] == f"{BASE}/console/", (name, status, headers)
    assert_no_cors(headers, f"{name} redirect")


def test_override_etag_follows_the_file(override, console_dir):
    f = console_dir / "sub" / "changing.js"
    f.write_text("// one\n")
    _, h1, b1 = get(override, f"{BASE}/console/sub/changing.js")
    f.write_text("// two, longer\n")
    _, h2, b2 = get(override, f"{BASE}/console/sub/changing.js")
    assert (b1, b2) == (b"// one\n", b"// two, longer\n")
    assert h1["etag"] != h2["etag"]


# ---------------------------------------------------------------------------------------------------------------
# CORS: only the REST publish endpoint answers foreign origins


def test_dev_token_and_ops_endpoints_have_no_cors(dev):
    status, headers, body = get(dev, f"{BASE}/console/dev-token?channels=news")
    assert status == 200 and b'"token"' in body, (status, body)
    assert headers.get("cache-control") == "no-store"
    assert_no_cors(headers, "dev-token")
    for path in ("/health", "/metrics", "/info", "/nowhere", "/console/nope.js"):
        status, headers, _ = get(dev, f"{BASE}{path}")
        assert_no_cors(headers, path)


def test_publish_keeps_cors(dev):
    r = requests.options(dev.url("/publish"), headers={"Origin": "https://x.example",
                                                       "Access-Control-Request-Method": "POST"}, timeout=5)
    assert r.status_code == 204 and r.headers.get("Access-Control-Allow-Origin") == "*", r.headers
    r = requests.post(dev.url("/publish"), json={"channel": "news", "event": "e", "payload": 1},
                      headers={"Origin": "https://x.example", "Authorization": "Bearer wrong"}, timeout=5)
    assert r.status_code == 401 and r.headers.get("Access-Control-Allow-Origin") == "*", r.headers
    # ... and the next request on the same connection is not answered with it
    with requests.Session() as s:
        s.post(dev.url("/publish"), json={}, headers={"Authorization": "Bearer wrong"}, timeout=5)
        r = s.get(dev.url("/console/"), timeout=5)
        assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers, r.headers


# ---------------------------------------------------------------------------------------------------------------
# --dev: the console is built in, and the server listens on this machine only unless told otherwise


def test_plain_dev_serves_the_console(dev):
    r = requests.get(dev.url("/console/"), timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"] == FILES["index.html"], (r.status_code, r.text[:200])
    assert r.content == (PAGE / "index.html").read_bytes()
    js = requests.get(dev.url("/console/broadcaster.js"), timeout=5)
    assert js.status_code == 200 and "Broadcaster" in js.text


def start_dev(*args, env=None) -> Server:
    return Server("--dev", "--port", "0", *args, env=env, secrets=False, fixed_args=False).wait_listening()


def test_dev_listens_on_loopback_by_default():
    srv = start_dev()
    try:
        assert srv.host == "127.0.0.1", srv.output()
        deadline = time.monotonic() + 5
        while "only: other machines cannot reach it" not in srv.output() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "Listening on 127.0.0.1 only" in srv.output(), srv.output()
    finally:
        srv.stop()


@pytest.mark.parametrize("how", ["flag", "env", "file"])
def test_dev_listens_where_a_host_is_given(how, tmp_path):
    if how == "flag":
        srv = start_dev("--host", "0.0.0.0")
    elif how == "env":
        srv = start_dev(env={"HOST": "0.0.0.0"})
    else:
        f = tmp_path / "dev.toml"
        f.write_text('host = "0.0.0.0"\n')
        srv = start_dev("--config", str(f))
    try:
        assert srv.host == "0.0.0.0", srv.output()
        deadline = time.monotonic() + 5
        while "WARNING: listening on 0.0.0.0" not in srv.output() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "WARNING: listening on 0.0.0.0" in srv.output(), srv.output()
    finally:
        srv.stop()


def test_print_config_shows_the_dev_host():
    p = subprocess.run([str(BINARY), "--dev", "--print-config"], env=clean_env(), capture_output=True, text=True,
                       timeout=10, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stderr
    assert re.search(r'^host = "127\.0\.0\.1"\s+# dev$', p.stdout, re.M), p.stdout


@pytest.mark.parametrize("host,status", [("127.0.0.1", 200), ("127.0.0.1:8000", 200), ("localhost:8000", 200),
                                         ("[::1]:8000", 200), ("evil.example", 403),
                                         ("rebind.evil.example:8000", 403), ("127.0.0.1.nip.io", 403)])
def test_dev_token_only_for_requests_naming_the_server_directly(dev, host, status):
    """DNS rebinding: a page whose own name resolves to 127.0.0.1 sends that name as Host; no token for it."""
    request = f"GET {BASE}/console/dev-token?channels=news HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    got, _, body = http_raw(dev.port, request.encode())
    assert got == status, (host, got, body[:200])
    if status == 200:
        assert json.loads(body)["token"].count(".") == 2
    else:
        assert b"token" not in body.split(b'"message"')[0], body
