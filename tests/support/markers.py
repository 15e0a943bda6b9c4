"""Markers from what a test starts, so that `-m` selects tiers that mean something.

A test is marked from the code it can reach: its own function and every fixture it uses,
followed through the helpers defined under tests/ (their globals, nested functions, class
methods), down to the things that start a server:

- `network`: the sandbox Stellar network, the loopback indexer, the read-only web server;
- `redis`: a Redis server; `postgres`: the PostgreSQL server (or the PostgreSQL ledger);
- `browser`: headless chromium through selenium.

`slow` is explicit on the long tests (`@pytest.mark.slow`), as are marks for servers a test
starts in a subprocess, which no code walk can see.

Under xdist (`--dist loadgroup`), the tests of a module whose module-scoped fixture starts a
server run on one worker, so the server starts once as in a serial run; and modules are handed
out longest first (slow, then servers, then the rest), so that the long tests do not end the run
alone.
"""

from __future__ import annotations

import inspect
import os
import types
from collections.abc import Iterable

import pytest
from _pytest.nodeid import NodeId
from selenium import webdriver

from payouts.export.server import make_server, serve_in_thread
from payouts.sandbox import SandboxServer, running_sandbox
from tests.sources.indexer_server import IndexerServer
from tests.support.servers import PostgresServer, RedisServer

SERVER_MARKS = ("network", "redis", "postgres", "browser")

# what starts a server, by identity, and the mark it gives
_STARTERS: dict[int, str] = {
    id(running_sandbox): "network",
    id(SandboxServer): "network",
    id(IndexerServer): "network",
    id(make_server): "network",
    id(serve_in_thread): "network",
    id(RedisServer): "redis",
    id(PostgresServer): "postgres",
    id(webdriver): "browser",
}
_POSTGRES_FIXTURES = {"postgres_server", "postgres_template"}

_reach_cache: dict[int, frozenset[str]] = {}


def _codes(code: types.CodeType) -> Iterable[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


def _ours(value: object) -> bool:
    module = getattr(value, "__module__", None) or ""
    return module == "tests" or module.startswith("tests.")


def _functions_of(value: object) -> list[types.FunctionType]:
    if isinstance(value, type):
        members = []
        for member in vars(value).values():
            if isinstance(member, staticmethod | classmethod):
                members.append(member.__func__)
            elif isinstance(member, property):
                members.append(member.fget)
            else:
                members.append(member)
        return [f for m in members if isinstance(f := _unwrapped(m), types.FunctionType)]
    function = _unwrapped(value)
    return [function] if isinstance(function, types.FunctionType) else []


def _unwrapped(value: object) -> object:
    return inspect.unwrap(value) if isinstance(value, types.FunctionType) else value


def reach(function: object) -> frozenset[str]:
    """The server marks of everything `function` can call among our test helpers."""
    cached = _reach_cache.get(id(function))
    if cached is not None:
        return cached
    marks: set[str] = set()
    pending = _functions_of(function)
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        for code in _codes(current.__code__):
            for name in code.co_names:
                value = current.__globals__.get(name)
                if value is None:
                    continue
                mark = _STARTERS.get(id(value))
                if mark:
                    marks.add(mark)
                elif _ours(value) and not isinstance(value, types.ModuleType):
                    pending.extend(_functions_of(value))
    result = _reach_cache[id(function)] = frozenset(marks)
    return result


def _fixture_defs(item: pytest.Item) -> list:
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return []
    return [defs[-1] for name, defs in info.name2fixturedefs.items() if defs and name in item.fixturenames]


def mark_items(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        marks: set[str] = set()
        if isinstance(item, pytest.Function):
            marks |= reach(item.function)
        shared_server = False
        for fixturedef in _fixture_defs(item):
            fixture_marks = reach(fixturedef.func)
            marks |= fixture_marks
            if fixture_marks and fixturedef.scope in ("module", "class", "package"):
                shared_server = True
        if _POSTGRES_FIXTURES & set(item.fixturenames):
            marks.add("postgres")
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("ledger_url") == "postgresql":
            marks.add("postgres")
        for mark in sorted(marks - {m.name for m in item.iter_markers()}):
            item.add_marker(mark)
        if shared_server and item.get_closest_marker("xdist_group") is None:
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::", 1)[0]))

    if os.environ.get("PYTEST_XDIST_WORKER"):
        # longest first, whole modules at a time (a module's own order is kept)
        rank: dict[str, int] = {}
        for item in items:
            module = item.nodeid.split("::", 1)[0]
            if item.get_closest_marker("slow"):
                weight = 0
            elif any(item.get_closest_marker(m) for m in SERVER_MARKS):
                weight = 1
            else:
                weight = 2
            rank[module] = min(rank.get(module, 2), weight)
        items.sort(key=lambda item: rank[item.nodeid.split("::", 1)[0]])


class GroupNodeIds:
    """xdist's `loadgroup` reads a test's group from a `@group` suffix that its worker appends
    to the test's node id. xdist 3.8 writes that suffix where pytest 9.2 no longer keeps node ids
    (pytest-dev/pytest-xdist#1386), so every group was silently spread over all workers and each
    module's shared server started once per worker. The suffix is written here, after xdist's own
    hook, in pytest's structured node id, unless it is already there."""

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, config: pytest.Config, items: list[pytest.Item]) -> None:
        if not getattr(config.option, "loadgroup", False):
            return
        for item in items:
            names = sorted(
                {
                    str(m.args[0] if m.args else m.kwargs.get("name", "default"))
                    for m in item.iter_markers("xdist_group")
                }
            )
            if not names:
                continue
            suffix = "@" + "_".join(names)
            if item.nodeid.endswith(suffix):
                continue
            item._id = NodeId.parse(item.nodeid + suffix)  # type: ignore[attr-defined]
