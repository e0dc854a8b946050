"""Makes a django-minimal-log 0.7.2 database with the real app, and prints
every row of it as JSON.

Run by test_import_dml.py with the interpreter of its own venv (Django 3.2,
django-minimal-log 0.7.2, django-ipware 2, psycopg2; `make test-python`
creates it), never the client's venv (Django >= 4.2 there):

    python dml_history.py sqlite /tmp/x/db.sqlite3
    python dml_history.py postgres HOST PORT DBNAME USER
    python dml_history.py sqlite /tmp/x/db.sqlite3 more   # later: one more entry, one more resolve

Entries arrive through the original's own endpoint (`add_log_entry`, with
Django's test Client, from several addresses), as its clients sent them;
resolves, a revoke and a key's deletion go through its models, as its
dashboard and admin did.
"""

import json
import sys

import django
from django.conf import settings


def configure(argv):
    if argv[1] == "sqlite":
        db = {"ENGINE": "django.db.backends.sqlite3", "NAME": argv[2]}
    else:
        host, port, name, user = argv[2:6]
        db = {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": host,
            "PORT": port,
            "NAME": name,
            "USER": user,
        }
    settings.configure(
        DEBUG=False,
        SECRET_KEY="dml-import-tests",
        ALLOWED_HOSTS=["testserver"],
        USE_TZ=True,
        DATABASES={"default": db},
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "minimal_log_host",
        ],
        ROOT_URLCONF=__name__,
        MIDDLEWARE=[],
        MINIMAL_LOG_TEMPLATE="base.html",
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    )
    django.setup()


urlpatterns = []


def main(argv):
    more = argv[-1] == "more"
    if more:
        argv = argv[:-1]
    configure(argv)
    from django.urls import include, re_path
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.test import Client
    from django.utils import timezone

    urlpatterns.append(re_path(r"^log/", include("minimal_log_host.urls")))
    from minimal_log_host.models import MinimalLogEntry, MinimalLogKey

    if more:
        # What happens in the original after a first import, while it still
        # runs: a new entry, a resolve.
        shop = MinimalLogKey.objects.get(description="shop")
        r = Client().post("/log/add/", {"key": shop.value, "message": "arrived after the import", "status": "warn"}, REMOTE_ADDR="")
        assert r.status_code == 200, r.content
        entry = MinimalLogEntry.objects.filter(resolved__isnull=True).order_by("id").first()
        entry.resolved = timezone.now()
        entry.solver = User.objects.get(username="alice")
        entry.save()
        print(json.dumps(dump(User, MinimalLogKey, MinimalLogEntry, [])))
        return

    call_command("migrate", verbosity=0, interactive=False)

    alice = User.objects.create(username="alice")
    bob = User.objects.create(username="bob.smith@example.com")
    carol = User.objects.create(username="carol")

    shop = MinimalLogKey.objects.create(description="shop", adder=alice)
    billing = MinimalLogKey.objects.create(description="billing service", adder=bob)
    old = MinimalLogKey.objects.create(description="old cron", adder=alice)
    gone = MinimalLogKey.objects.create(description="retired box", adder=carol)

    client = Client(raise_request_exception=False)
    refused = []

    def post(key, message, status, addr, field="message"):
        data = {"key": key.value, field: message}
        if status is not None:
            data["status"] = status
        r = client.post("/log/add/", data, REMOTE_ADDR=addr)
        if r.status_code != 200:
            refused.append({"message": message, "addr": addr, "status": r.status_code})
        return r

    post(shop, "checkout failed for order 1", "error", "127.0.0.1")
    post(shop, "payment ok", "good", "203.0.113.7")
    post(shop, "disk almost full", "warn", "2001:db8::1")
    post(shop, "nightly report sent", "info", "")
    post(shop, "status was left empty", "", "10.0.0.9")
    post(billing, "invoice 42 could not be rendered", "error", "192.168.1.20", field="description")
    post(billing, "billing restarted", "info", "")
    post(old, "cron job 7 timed out", "warn", "172.16.0.3")
    post(gone, "retired box says goodbye", "error", "")
    post(gone, "retired box still here", "warn", "198.51.100.250")
    # The shapes an address column holds besides the view's tuple string:
    # the admin's add form (a bare address, or nothing) and damage.
    MinimalLogEntry.objects.create(description="added in the admin", status="info", from_ip="10.1.2.3", key=billing)
    MinimalLogEntry.objects.create(description="added without address", status="warn", from_ip=None, key=billing)
    MinimalLogEntry.objects.create(description="garbled address", status="error", from_ip="not-an-ip", key=shop)
    MinimalLogEntry.objects.create(description="multi\nline\n  text with 'quotes' & <tags>", status="good", from_ip="(None, False)", key=shop)

    # Resolves, as its dashboard does them (now, by the user). On Postgres
    # only some of the posts above were stored (see test_import_dml.py), so
    # each is looked up by its text.
    dave = User.objects.create(username="dave")
    for message, user in (
        ("checkout failed for order 1", alice),
        ("nightly report sent", bob),
        ("retired box says goodbye", carol),
        ("added in the admin", alice),
        ("added without address", dave),
    ):
        entry = MinimalLogEntry.objects.filter(description=message).first()
        if entry is not None:
            entry.resolved = timezone.now()
            entry.solver = user
            entry.save()

    old.active = False
    old.save()
    gone.delete()  # SET_NULL: its entries stay, with key NULL
    dave.delete()  # SET_NULL: the entry stays resolved, by nobody

    print(json.dumps(dump(User, MinimalLogKey, MinimalLogEntry, refused)))


def ms(dt):
    """Unix milliseconds, truncated, as minilog keeps them."""
    if dt is None:
        return None
    return int(dt.timestamp()) * 1000 + dt.microsecond // 1000


def dump(User, MinimalLogKey, MinimalLogEntry, refused):
    return {
        "users": {u.id: u.username for u in User.objects.all()},
        "keys": [
            {
                "id": k.id,
                "description": k.description,
                "secret": k.value,
                "active": k.active,
                "added": ms(k.added),
                "adder": k.adder.username,
            }
            for k in MinimalLogKey.objects.order_by("id")
        ],
        "entries": [
            {
                "id": e.id,
                "message": e.description,
                "status": e.status,
                "added": ms(e.added),
                "from_ip": e.from_ip,
                "key_id": e.key_id,
                "resolved": ms(e.resolved),
                "solver": e.solver.username if e.solver else None,
            }
            for e in MinimalLogEntry.objects.order_by("id")
        ],
        "refused": refused,
    }


if __name__ == "__main__":
    main(sys.argv)
