"""GET {BASE}/ points a person at the console and the docs instead of a bare 404; in dev mode the example chat
(examples/chat) is built in at {BASE}/console/chat/ next to the SDK it imports."""

import requests

from conftest import BASE, Server, server, start_server  # noqa: F401  (server is the shared fixture)

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def start_dev(*args) -> Server:
    return Server("--dev", "--port", "0", *args, secrets=False, fixed_args=False).wait_listening()


def test_index_answers_json_by_default_and_html_to_browsers(server):
    for path in ("/", ""):
        r = requests.get(f"http://127.0.0.1:{server.port}{BASE}{path}", timeout=5)
        assert r.status_code == 200, (path, r.status_code, r.text)
        assert r.headers["content-type"] == "application/json"
        j = r.json()
        assert j["console"] is None and j["chat"] is None  # no --console here
        assert j["websocket"] == f"{BASE}/websocket" and j["publish"] == f"{BASE}/publish"
        assert "docs/" in j["docs"]
    r = requests.get(server.url("/"), headers=BROWSER, timeout=5)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "--console" in r.text and "docs/" in r.text
    assert requests.head(server.url("/"), timeout=5).status_code == 200
    assert requests.post(server.url("/"), timeout=5).status_code == 405
    assert requests.get(server.url("/nothing-here"), timeout=5).status_code == 404  # still a 404 elsewhere


def test_dev_index_links_the_console_and_the_chat_which_are_served():
    srv = start_dev()
    try:
        r = requests.get(srv.url("/"), headers=BROWSER, timeout=5)
        assert r.status_code == 200
        assert f'href="{BASE}/console/"' in r.text and f'href="{BASE}/console/chat/"' in r.text, r.text
        j = requests.get(srv.url("/"), timeout=5).json()
        for link in (j["console"], j["chat"]):
            page = requests.get(f"http://127.0.0.1:{srv.port}{link}", timeout=5)
            assert page.status_code == 200 and page.headers["content-type"].startswith("text/html"), link
        chat = requests.get(srv.url("/console/chat/"), timeout=5).text
        assert '<script type="module" src="./chat.js">' in chat
        js = requests.get(srv.url("/console/chat/chat.js"), timeout=5)
        assert js.status_code == 200 and 'from "./broadcaster.js"' in js.text
        sdk = requests.get(srv.url("/console/chat/broadcaster.js"), timeout=5)
        assert sdk.status_code == 200 and sdk.text == requests.get(srv.url("/console/broadcaster.js"), timeout=5).text
        r = requests.get(srv.url("/console/chat"), allow_redirects=False, timeout=5)
        assert r.status_code == 301 and r.headers["location"] == f"{BASE}/console/chat/"
    finally:
        srv.stop()


def test_the_chat_is_not_served_outside_dev_mode():
    srv = start_server("--console")
    try:
        assert requests.get(srv.url("/console/"), timeout=5).status_code == 200
        for path in ("/console/chat/", "/console/chat/index.html", "/console/chat/chat.js"):
            assert requests.get(srv.url(path), timeout=5).status_code == 404, path
        j = requests.get(srv.url("/"), timeout=5).json()
        assert j["console"] == f"{BASE}/console/" and j["chat"] is None
    finally:
        srv.stop()
