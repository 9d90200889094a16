"""Who owns the live state in a Redis database, and clearing it only when that is safe.

Every key of the live path starts with ``<prefix>:`` (``tickml:``). A deployment marks the
database it uses in ``<prefix>:deployment`` (a hash: ``kind`` = ``run`` for the supervisor of a
live deployment, ``replay`` for ``tickml live replay``, with ``host``, ``pid``, ``started``).
A command that deletes the prefix's keys (a replay starting fresh) first calls
:func:`check_clearable`: it refuses, with :class:`ForeignState` (a usage error, exit 2),

- a database whose live state belongs to another deployment: a ``run`` marker, or keys of the
  prefix without any marker (workers started by hand or by an older version);
- a database another replay is using right now (its marker names a live process on this host);

unless the caller passes ``allow=True`` (``--wipe-existing`` on the command line). Keys of an
earlier replay that finished are cleared without asking.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

import redis

from live.config import LiveConfig
from tickml.errors import UsageError
from tickml.redact import redact

DEPLOYMENT = "deployment"


class ForeignState(UsageError):
    """The target Redis database holds live state this command must not delete."""


def mark(cfg: LiveConfig, client: redis.Redis, kind: str) -> None:
    """Record that this process's ``kind`` deployment uses the database."""
    client.hset(
        cfg.key(DEPLOYMENT),
        mapping={
            "kind": kind,
            "host": socket.gethostname(),
            "pid": str(os.getpid()),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
    )


def owner(cfg: LiveConfig, client: redis.Redis) -> dict[str, str]:
    raw: Any = client.hgetall(cfg.key(DEPLOYMENT))
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in raw.items()
    }


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_clearable(cfg: LiveConfig, client: redis.Redis, allow: bool = False) -> None:
    """Raise :class:`ForeignState` unless the prefix's keys may be deleted (module doc)."""
    if allow or next(client.scan_iter(match=f"{cfg.prefix}:*", count=1000), None) is None:
        return
    where = f"Redis {redact(cfg.redis_url)}"
    fix = (
        "point TICKML_REDIS_URL at another database (redis://127.0.0.1:6379/N) or pass "
        "--wipe-existing to delete that state"
    )
    own = owner(cfg, client)
    if own.get("kind") == "replay":
        pid = int(own.get("pid", "0") or 0)
        busy = own.get("host") == socket.gethostname() and pid not in (0, os.getpid())
        if busy and _alive(pid):
            raise ForeignState(f"{where} is in use by another replay (pid {pid}); {fix}")
        return
    if own:
        who = f"a '{own.get('kind')}' deployment on {own.get('host')} since {own.get('started')}"
    else:
        who = f"workers that left no deployment marker ({cfg.prefix}:* keys exist)"
    raise ForeignState(f"{where} holds the live state of {who}; {fix}")


def clear(cfg: LiveConfig, client: redis.Redis) -> int:
    """Delete every key of the live prefix (bus, checkpoints, progress, signals, state)."""
    n = 0
    for key in client.scan_iter(match=f"{cfg.prefix}:*", count=1000):
        n += int(client.unlink(key))
    return n
