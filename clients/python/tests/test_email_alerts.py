"""Email alerts (issue 16): `minilog serve` sends an alert through a real
SMTP server (aiosmtpd) that requires STARTTLS and AUTH, and through one
speaking TLS from the first byte; the message has a plain-text and an HTML
part with the group's title, level, count, the newest entry and a link.
The server's certificate comes from a throwaway CA (trustme), given to
minilog with --smtp-ca-file."""

import email
import json
import shutil
import subprocess
import time
import urllib.request
from email import policy

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from conftest import Minilog, _binaries, free_port

USER, PASSWORD = "alerts", "s3cret pw"


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(
            {
                "from": envelope.mail_from,
                "to": envelope.rcpt_tos,
                # STARTTLS sets session.ssl; TLS from the first byte shows
                # on the transport.
                "tls": session.ssl is not None
                or server.transport.get_extra_info("ssl_object") is not None,
                "authenticated": session.authenticated,
                "message": email.message_from_bytes(envelope.content, policy=policy.default),
            }
        )
        return "250 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == USER.encode()
        and auth_data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok)


@pytest.fixture
def ca(tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return ca, cert, ca_file


def start_smtp(inbox, cert, implicit):
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    port = free_port()
    if implicit:
        controller = Controller(
            inbox,
            hostname="127.0.0.1",
            port=port,
            ssl_context=context,
            authenticator=authenticator,
            auth_required=True,
            # aiosmtpd only knows STARTTLS as TLS; this connection is TLS
            # from its first byte (the handler checks).
            auth_require_tls=False,
        )
    else:
        controller = Controller(
            inbox,
            hostname="127.0.0.1",
            port=port,
            tls_context=context,
            require_starttls=True,
            authenticator=authenticator,
            auth_required=True,
            auth_require_tls=True,
        )
    controller.start()
    return controller, port


def wait_for(inbox, n, seconds=60):
    deadline = time.monotonic() + seconds
    while len(inbox.messages) < n:
        assert time.monotonic() < deadline, "no email arrived in %d s" % seconds
        time.sleep(0.05)
    return inbox.messages


@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "implicit-tls"])
def test_an_email_alert_goes_through_tls_and_auth_with_text_and_html(ca, implicit):
    _, cert, ca_file = ca
    inbox = Inbox()
    controller, port = start_smtp(inbox, cert, implicit)
    binary, nats_bin = _binaries()
    server = Minilog(binary, nats_bin)
    scheme = "smtps" if implicit else "smtp"
    server.env.update(
        MINILOG_SMTP_URL="%s://%s:%s@127.0.0.1:%d" % (scheme, USER, "s3cret%20pw", port),
        MINILOG_SMTP_FROM="minilog <minilog@example.com>",
        MINILOG_SMTP_CA_FILE=str(ca_file),
        MINILOG_PUBLIC_URL="https://log.example.com",
    )
    try:
        server.start()
        key = server.create_key("email alerts")
        out = server.cli(
            "alert", "add", "--on", "new", "--email", "ops@example.com", "--level", "error", "--json"
        )
        rule = json.loads(out.splitlines()[-1])["id"]
        listed = server.cli("alert", "list", "--json")
        assert json.loads(listed.splitlines()[0])["target"] == {"email": ["ops@example.com"]}
        request = urllib.request.Request(
            server.url + "/api/v1/entries",
            data=json.dumps(
                [
                    {"level": "warn", "message": "below the rule's level"},
                    {"level": "error", "message": "payment gateway timed out after 30 s\nretried 3 times\nlast answer: <none>"},
                ]
            ).encode(),
            headers={"Authorization": "Bearer " + key["secret"], "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=20) as r:
            entry_id = json.load(r)["ids"][1]

        got = wait_for(inbox, 1)[0]
        assert got["tls"] and got["authenticated"]
        assert got["from"] == "minilog@example.com"
        assert got["to"] == ["ops@example.com"]
        msg = got["message"]
        assert msg["Subject"] == "New problem: [error] payment gateway timed out after 30 s"
        text = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        for part in (text, html):
            assert "[error] payment gateway timed out after 30 s" in part
            # The newest entry whole (its other lines too), with its id.
            assert "Newest entry #%d, 20" % entry_id in part
            assert "retried 3 times" in part
            assert "https://log.example.com/log/groups/" in part
            assert "1 entries (1 open)" in part
            assert "%s-%d" % (rule, entry_id) in part
        assert '<a href="https://log.example.com/log/groups/' in html
        assert "last answer: <none>" in text and "last answer: &lt;none&gt;" in html

        # The test button's twin on the command line goes the same way.
        server.cli("alert", "test", rule)
        test = wait_for(inbox, 2)[1]["message"]
        assert test["Subject"].startswith("Test alert: ")
        # Nothing more: the warn entry matched no rule.
        assert len(inbox.messages) == 2
        server.cli("alert", "remove", rule)
        assert server.cli("alert", "list", "--json").strip() == ""
    finally:
        server.stop()
        controller.stop()
        shutil.rmtree(server.data, ignore_errors=True)


def test_a_wrong_smtp_password_fails_and_says_so(ca):
    _, cert, ca_file = ca
    inbox = Inbox()
    controller, port = start_smtp(inbox, cert, False)
    binary, nats_bin = _binaries()
    server = Minilog(binary, nats_bin)
    server.env.update(
        MINILOG_SMTP_URL="smtp://%s:wrong@127.0.0.1:%d" % (USER, port),
        MINILOG_SMTP_FROM="minilog@example.com",
        MINILOG_SMTP_CA_FILE=str(ca_file),
    )
    try:
        server.start()
        rule = json.loads(
            server.cli("alert", "add", "--on", "new", "--email", "ops@example.com", "--json")
        )["id"]
        failed = subprocess.run(
            [server.binary, "alert", "test", rule, "--data", server.data],
            env=server.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert failed.returncode != 0
        # aiosmtpd answers the refused login in a way lettre waits on, so
        # the error here is the send's own time limit.
        assert "the test alert was not delivered: SMTP 127.0.0.1:" in failed.stderr, failed.stderr
        assert inbox.messages == []
    finally:
        server.stop()
        controller.stop()
        shutil.rmtree(server.data, ignore_errors=True)
