"""The one redaction function over every URL and DSN form the project meets."""

import json
import logging

import pytest

from live.logs import JsonFormatter
from tickml.errors import one_line
from tickml.redact import redact
from tickml.store.postgres import TickStore

pytestmark = pytest.mark.unit

SECRET = "s3cr3t-Pw"

# (text holding SECRET, what must survive)
FORMS = [
    (f"postgresql://bob:{SECRET}@h:5432/db", "postgresql://bob:***@h:5432/db"),
    (f"postgresql+psycopg2://bob:{SECRET}@h/db", "postgresql+psycopg2://bob:***@h/db"),
    (f"postgres://bob:{SECRET}%40x@h/db", "postgres://bob:***@h/db"),
    (f"postgresql://postgres@127.0.0.1:1/x?password={SECRET}",
     "postgresql://postgres@127.0.0.1:1/x?password=***"),
    (f"postgresql://h/db?user=bob&password={SECRET}&sslmode=require",
     "postgresql://h/db?user=bob&password=***&sslmode=require"),
    (f"postgresql://u@h/db?sslmode=verify-full&sslpassword={SECRET}",
     "postgresql://u@h/db?sslmode=verify-full&sslpassword=***"),
    (f"host=h port=5432 password={SECRET} dbname=x", "host=h port=5432 password=*** dbname=x"),
    (f"host=h password='{SECRET} with \\' quote' dbname=x", "host=h password=*** dbname=x"),
    (f"sslpassword = {SECRET} user=u", "sslpassword = *** user=u"),
    (f"redis://:{SECRET}@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
    (f"rediss://default:{SECRET}@cache:6380/2", "rediss://default:***@cache:6380/2"),
    (f"redis://127.0.0.1:6379/0?password={SECRET}", "redis://127.0.0.1:6379/0?password=***"),
    (f"unix://:{SECRET}@/run/redis.sock?db=3", "unix://:***@/run/redis.sock?db=3"),
    (f"redis://u:p@{SECRET}@host:1/0", "redis://u:***@host:1/0"),  # unencoded '@' in it
    (f"connection to postgresql://u:{SECRET}@db:5432/x failed: timeout",
     "connection to postgresql://u:***@db:5432/x failed: timeout"),
    (f"PGPASSWORD={SECRET} psql", "PGPASSWORD=*** psql"),
    (f"api_key={SECRET}&x=1", "api_key=***&x=1"),
]


@pytest.mark.parametrize(("text", "expected"), FORMS)
def test_every_form_is_redacted(text: str, expected: str) -> None:
    out = redact(text)
    assert SECRET not in out and "s3cr3t" not in out
    assert out == expected


@pytest.mark.parametrize(
    "text",
    [
        "postgresql://postgres@127.0.0.1:5432/postgres",
        "redis://127.0.0.1:6379/15",
        "postgresql://h:5432/db?sslmode=require",
        "mail me at a@b.com, or not",
        'connection failed: server at "127.0.0.1", port 1 failed: Connection refused',
        "",
    ],
)
def test_text_without_secrets_is_unchanged(text: str) -> None:
    assert redact(text) == text


def test_every_log_path_redacts() -> None:
    """The live workers' formatter (message, extra fields, traceback), the CLI's error line
    and the tick store's repr never show the password."""
    url = f"postgresql://postgres@127.0.0.1:1/x?password={SECRET}"
    try:
        raise ValueError(f"cannot connect to {url}")
    except ValueError as exc:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "to %s", (url,), None)
        record.url = url
        record.exc_info = (type(exc), exc, exc.__traceback__)
        line = JsonFormatter("writer").format(record)
        assert SECRET not in line and json.loads(line)["url"].endswith("password=***")
        assert SECRET not in one_line(exc)
    assert SECRET not in repr(TickStore(f"postgresql+psycopg://bob:{SECRET}@h/db"))
    assert redact(None) == ""
