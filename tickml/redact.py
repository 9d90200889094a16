"""The one redaction function: secrets out of URLs, connection strings and any text holding them.

Every log line and error message that may hold a connection string goes through :func:`redact`
(the live workers' JSON formatter applies it to every record; the CLI to every error line; the
tick store to the URL it logs). It replaces with ``***``:

- the password of a URL's userinfo, any scheme: ``postgresql://user:pw@host/db``,
  ``postgresql+psycopg://...``, ``redis://:pw@host:6379/0``, ``rediss://user:pw@...``,
  ``unix://:pw@/run/redis.sock`` (the password runs to the last ``@`` before the first ``/``
  or blank: an unencoded ``#``, ``?`` or ``@`` in a password is masked too, at worst with the
  host after it);
- the value of any ``key=value`` whose key ends in ``password`` (``password``, ``sslpassword``,
  ``PGPASSWORD``), ``passwd``, ``pwd``, ``secret``, ``token``, ``apikey`` or ``api_key``: in a
  query string (``?password=pw&sslmode=require``) and in a libpq key=value connection string
  (``host=h password=pw``, ``password='p w'`` quoted with backslash escapes).

It works on free text (an exception message quoting a URL), never raises, and leaves text
without secrets unchanged.
"""

from __future__ import annotations

import re

MASK = "***"

_USERINFO = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@]*:)(?P<pw>[^\s/]*)(?P<at>@)"
)
_KEY_VALUE = re.compile(
    r"(?P<head>(?<![A-Za-z0-9])[A-Za-z0-9_.\-]*?"
    r"(?:password|passwd|pwd|secret|token|apikey|api_key)\s*=\s*)"
    r"(?P<val>'(?:[^'\\]|\\.)*'?|\"(?:[^\"\\]|\\.)*\"?|[^\s&;,'\"]*)",
    re.IGNORECASE,
)


def redact(text: object) -> str:
    """``text`` (a URL, a DSN, any message) with every password replaced by ``***``."""
    if text is None:
        return ""
    s = text if isinstance(text, str) else str(text)
    if "=" not in s and "@" not in s:
        return s
    s = _USERINFO.sub(lambda m: m["head"] + (MASK if m["pw"] else "") + m["at"], s)
    return _KEY_VALUE.sub(lambda m: m["head"] + (MASK if m["val"] else ""), s)
