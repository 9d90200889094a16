"""Errors shown to people: usage errors, and one clear line for any exception.

:class:`UsageError` marks what the caller got wrong (arguments, configuration, a target that
must not be touched): commands exit with status 2 for it and 1 for every other failure.
:func:`one_line` turns any exception into the line a command prints; it follows the chain of
explicit causes to the root without looping (Dagster's step errors form a cycle: the user's
exception's ``__context__`` is the step error whose ``__cause__`` is that same exception;
:func:`break_cycles` cuts it so that traceback printers terminate too), and it never shows a
password (:func:`tickml.redact.redact`).
"""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn

from tickml.redact import redact

#: exit status of a usage or configuration error (what to fix is in the message)
EXIT_USAGE = 2
#: exit status of any other failure
EXIT_FAILURE = 1


def debug_enabled(argv: list[str] | None = None) -> bool:
    """``--debug`` among the arguments or ``TICKML_DEBUG=1`` (:class:`tickml.settings.Settings`):
    show full tracebacks. Never raises (it runs while an error is being reported)."""
    args = sys.argv[1:] if argv is None else list(argv)
    if "--debug" in args:
        return True
    try:
        from tickml.settings import Settings

        return Settings.from_env().debug
    except Exception:  # noqa: BLE001 - a broken environment must not hide the real error
        return False


class Reported(Exception):
    """An error whose message is already the line to show (no ``Type:`` prefix added)."""


class UsageError(Reported, ValueError):
    """Bad arguments or configuration: the message says what is wrong and what to do."""


class RunFailed(Reported, RuntimeError):
    """A run (a Dagster run, a worker) failed; the message names it and its root cause."""


def chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it, outermost first, each once: Dagster's ``user_exception``
    (the asset's own error inside a step error) and explicit causes (``raise ... from``).
    Implicit contexts (an error raised while another was handled) are not causes."""
    out: list[BaseException] = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        out.append(cur)
        user = getattr(cur, "user_exception", None)
        cur = user if isinstance(user, BaseException) else cur.__cause__
    return out


def break_cycles(exc: BaseException) -> BaseException:
    """Cut every link of ``exc``'s cause/context graph that leads back into it (so any
    traceback printer terminates); returns ``exc``."""
    done: set[int] = set()

    def visit(cur: BaseException, path: set[int]) -> None:
        path.add(id(cur))
        for attr in ("__cause__", "__context__"):
            nxt = getattr(cur, attr)
            if nxt is None:
                continue
            if id(nxt) in path:  # a link back into the chain being followed: the cycle
                setattr(cur, attr, None)
            elif id(nxt) not in done and len(path) < 200:
                visit(nxt, path)
        path.discard(id(cur))
        done.add(id(cur))

    visit(exc, set())
    return exc


def root_cause(exc: BaseException) -> BaseException:
    """The innermost exception of the chain (the one that says what went wrong)."""
    return chain(exc)[-1]


def is_usage(exc: BaseException) -> bool:
    return any(isinstance(e, UsageError) for e in chain(exc))


def one_line(exc: BaseException, limit: int = 400) -> str:
    """One line for ``exc``: the message of the outermost :class:`Reported` error of its
    chain, else ``Type: message`` of the root cause; whitespace collapsed, passwords
    redacted, at most ``limit`` characters."""
    links = chain(exc)
    shown = next((e for e in links if isinstance(e, Reported)), links[-1])
    text = " ".join(str(shown).split()) or type(shown).__name__
    if not isinstance(shown, Reported):
        name = type(shown).__name__
        text = text if text.startswith(name) else f"{name}: {text}"
    text = redact(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def exit_code(exc: BaseException) -> int:
    return EXIT_USAGE if is_usage(exc) else EXIT_FAILURE


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are one line on stderr and exit status 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
        sys.exit(EXIT_USAGE)
