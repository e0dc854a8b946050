"""A minimal Django project (settings here) logging through LOGGING, and the
browser context processor, against a real minilog."""

import json
import logging
import os
import re
import urllib.error
import urllib.request

import django  # from PyPI; `make test-python` installs it
import pytest
from django.conf import settings
from django.http import HttpResponse
from django.urls import path

from conftest import ALLOWED_ORIGIN
from minilog_client import MinilogHandler


class Alice:
    is_authenticated = True

    def get_username(self):
        return "alice"


def as_alice(get_response):
    def middleware(request):
        request.user = Alice()
        return get_response(request)

    return middleware


def checkout(request):
    raise RuntimeError("payment provider timed out")


def fine(request):
    return HttpResponse("fine")


urlpatterns = [path("shop/checkout/", checkout), path("fine/", fine)]


@pytest.fixture(scope="module")
def django_project(minilog, key):
    """Configures Django once, the way django-minimal-log users did: the
    original's setting names, the handler in LOGGING."""
    if not settings.configured:
        settings.configure(
            DEBUG=False,
            ALLOWED_HOSTS=["testserver"],
            ROOT_URLCONF=__name__,
            MIDDLEWARE=[__name__ + ".as_alice"],
            INSTALLED_APPS=[],
            SECRET_KEY="tests-only",
            MINIMAL_LOG_URL=minilog.url + "/log/add/",
            MINIMAL_LOG_AUTH_KEY=key["secret"],
            MINILOG_KEY_ID=key["id"],
            TEMPLATES=[
                {
                    "BACKEND": "django.template.backends.django.DjangoTemplates",
                    "OPTIONS": {"context_processors": ["minilog_client.django.browser"]},
                }
            ],
            LOGGING={
                "version": 1,
                "disable_existing_loggers": False,
                "handlers": {
                    "minilog": {"level": "WARNING", "class": "minilog_client.MinilogHandler"},
                },
                "loggers": {
                    "django": {"handlers": ["minilog"], "level": "WARNING", "propagate": True},
                },
            },
        )
        django.setup()
    [handler] = [h for h in logging.getLogger("django").handlers if isinstance(h, MinilogHandler)]
    return handler


def test_a_500_in_a_view_arrives_with_the_request(minilog, django_project):
    from django.test import Client

    response = Client(raise_request_exception=False).get("/shop/checkout/?basket=7")
    assert response.status_code == 500
    assert Client().get("/fine/").status_code == 200  # logs nothing
    assert django_project.flush(10)

    [entry] = minilog.entries("payment provider timed out")
    assert entry["level"] == "error"
    assert entry["source"] == "django.request"
    assert entry["message"].startswith("Internal Server Error: /shop/checkout/\nTraceback")
    assert entry["meta"]["path"] == "/shop/checkout/"
    assert entry["meta"]["method"] == "GET"
    assert entry["meta"]["user"] == "alice"
    assert entry["meta"]["status_code"] == "500"
    assert entry["meta"]["exception"] == "RuntimeError: payment provider timed out"


def rendered_script(django_project):
    from django.template import engines
    from django.test import RequestFactory

    template = engines["django"].from_string("<head>{{ MINILOG_BROWSER_SCRIPT }}</head>")
    return template.render(request=RequestFactory().get("/"))


def test_the_context_processor_renders_the_script_with_a_fresh_token(minilog, key, django_project):
    import base64
    import hashlib
    import hmac
    import time

    from minilog_client.browser import signing_key

    html = rendered_script(django_project)
    m = re.fullmatch(r'<head><script src="([^"]+)" data-token="([^"]+)"></script></head>', html)
    assert m, html
    assert m.group(1) == minilog.url + "/minilog.js"
    key_id, expiry, sig = m.group(2).split(".")
    assert key_id == key["id"]
    assert time.time() < int(expiry) <= time.time() + 600
    mac = hmac.new(signing_key(key["secret"]), ("%s|%s" % (key_id, expiry)).encode(), hashlib.sha256)
    assert sig == base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode()


def test_without_a_key_id_the_script_is_empty_and_the_page_still_renders(django_project):
    from django.test import override_settings

    with override_settings(MINILOG_KEY_ID=None), pytest.warns(RuntimeWarning, match="MINILOG_KEY_ID"):
        assert rendered_script(django_project) == "<head></head>"


def post_report(minilog, token, origin, message):
    request = urllib.request.Request(
        minilog.url + "/api/v1/browser",
        data=json.dumps({"token": token, "message": message, "url": origin + "/cart"}).encode(),
        headers={"Origin": origin, "Content-Type": "text/plain;charset=UTF-8"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, None


def test_the_gateway_accepts_the_rendered_token(minilog, key, marker, django_project):
    html = rendered_script(django_project)
    src, token = re.search(r'src="([^"]+)" data-token="([^"]+)"', html).groups()
    with urllib.request.urlopen(src, timeout=10) as r:  # the script it points to exists
        assert r.status == 200 and "data-token" in r.read().decode()

    status, answer = post_report(minilog, token, ALLOWED_ORIGIN, "%s TypeError: x is undefined" % marker)
    assert status == 200, answer
    [entry] = minilog.entries(marker)
    assert entry["id"] == answer["id"]
    assert entry["source"] == "browser" and entry["key_id"] == key["id"]
    assert entry["meta"]["url"] == ALLOWED_ORIGIN + "/cart"

    # The gateway does check: another origin, or a token signed with another secret.
    assert post_report(minilog, token, "https://evil.example", "%s forged" % marker)[0] == 403
    from minilog_client import browser_token

    forged = browser_token(key["id"], "SOME-OTHER-SECRET-SOME-OTHER-SEC")
    assert post_report(minilog, forged, ALLOWED_ORIGIN, "%s forged" % marker)[0] == 401
    assert len(minilog.entries(marker)) == 1


CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def test_headless_chromium_reports_a_page_error_with_the_rendered_script(minilog, marker, django_project, tmp_path):
    assert os.access(CHROMIUM, os.X_OK), f"no Chromium at {CHROMIUM}: run `make chromium` (Debian's chromium package)"
    import http.server
    import subprocess
    import threading
    import time

    from django.template import engines
    from django.test import RequestFactory, override_settings

    class Page(http.server.BaseHTTPRequestHandler):
        html = b""

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(self.html)

        def log_message(self, *args):
            pass

    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    origin = "http://127.0.0.1:%d" % site.server_address[1]
    page_key = minilog.create_key("python client page", origins=[origin])
    template = engines["django"].from_string(
        "<!doctype html><html><head>{{ MINILOG_BROWSER_SCRIPT }}</head><body>"
        "<script>throw new Error('%s thrown in the page')</script></body></html>" % marker
    )
    with override_settings(MINILOG_KEY_ID=page_key["id"], MINILOG_KEY=page_key["secret"]):
        Page.html = template.render(request=RequestFactory().get("/")).encode()
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        subprocess.run(
            [
                CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--user-data-dir=%s" % tmp_path, "--virtual-time-budget=3000", "--dump-dom",
                origin + "/shop/",
            ],
            check=True, capture_output=True, timeout=60,
        )
        deadline = time.monotonic() + 10
        while not minilog.entries(marker):
            assert time.monotonic() < deadline, "the browser's report did not arrive"
            time.sleep(0.1)
    finally:
        site.shutdown()
        site.server_close()
    [entry] = minilog.entries(marker)
    assert entry["source"] == "browser" and entry["key_id"] == page_key["id"]
    assert "%s thrown in the page" % marker in entry["message"]
    assert entry["meta"]["url"] == origin + "/shop/"
