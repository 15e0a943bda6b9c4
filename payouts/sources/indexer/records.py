"""One record of an indexer answer, every field type-checked; errors name the record and field."""

from __future__ import annotations

import builtins
import json
import re
from typing import Literal, overload

from payouts.sources.errors import IndexerDataError

U64_MAX = 2**64 - 1
_INT_STRING = re.compile(r"-?[0-9]+")
#: A BigInt "seconds" value above this is in milliseconds (10^11 s is the year 5138).
MILLISECONDS_ABOVE = 10**11


def describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"number {value!r}"
    if isinstance(value, str):
        return f"string {json.dumps(value[:40])}"
    return "an array" if isinstance(value, list) else "an object"


class Record:
    """One record of an answer, with the words that locate it in errors."""

    __slots__ = ("entity", "item", "where")

    def __init__(self, entity: str, item: object, where: str) -> None:
        if not isinstance(item, dict):
            raise IndexerDataError(entity, where, f"expected an object, got {describe(item)}")
        self.entity, self.item, self.where = entity, item, where

    def fail(self, problem: str) -> IndexerDataError:
        return IndexerDataError(self.entity, self.where, problem)

    def get(self, path: str) -> object:
        value: object = self.item
        for part in path.split("."):
            if not isinstance(value, dict):
                raise self.fail(f"{path}: expected an object, got {describe(value)}")
            if part not in value:
                raise self.fail(f"missing field {path!r}")
            value = value[part]
        return value

    @overload
    def int(
        self, path: builtins.str, *, nullable: Literal[False] = False, bigint: bool = False, minimum: int | None = None
    ) -> builtins.int: ...
    @overload
    def int(
        self, path: builtins.str, *, nullable: Literal[True], bigint: bool = False, minimum: int | None = None
    ) -> builtins.int | None: ...
    def int(
        self, path: builtins.str, *, nullable: bool = False, bigint: bool = False, minimum: builtins.int | None = None
    ) -> builtins.int | None:
        value = self.get(path)
        if value is None:
            if nullable:
                return None
            raise self.fail(f"{path} is null, expected an integer")
        if type(value) is int:
            number = value
        elif bigint and type(value) is str and _INT_STRING.fullmatch(value):
            number = int(value)  # GraphQL BigInt travels as a string of digits
        else:
            kind = "an integer or a string of digits (BigInt)" if bigint else "an integer"
            raise self.fail(f"{path}: expected {kind}, got {describe(value)}")
        if minimum is not None and number < minimum:
            raise self.fail(f"{path} is {number}, must be at least {minimum}")
        return number

    @overload
    def str(
        self, path: builtins.str, *, nullable: Literal[False] = False, choices: tuple[builtins.str, ...] = ()
    ) -> builtins.str: ...
    @overload
    def str(
        self, path: builtins.str, *, nullable: Literal[True], choices: tuple[builtins.str, ...] = ()
    ) -> builtins.str | None: ...
    def str(
        self, path: builtins.str, *, nullable: bool = False, choices: tuple[builtins.str, ...] = ()
    ) -> builtins.str | None:
        value = self.get(path)
        if value is None and nullable:
            return None
        if type(value) is not str:
            raise self.fail(f"{path}: expected a string, got {describe(value)}")
        if choices and value not in choices:
            raise self.fail(f"{path}: expected one of {', '.join(choices)}, got {describe(value)}")
        return value

    @overload
    def bool(self, path: builtins.str, *, nullable: Literal[False] = False) -> builtins.bool: ...
    @overload
    def bool(self, path: builtins.str, *, nullable: Literal[True]) -> builtins.bool | None: ...
    def bool(self, path: builtins.str, *, nullable: builtins.bool = False) -> builtins.bool | None:
        value = self.get(path)
        if value is None and nullable:
            return None
        if type(value) is not bool:
            raise self.fail(f"{path}: expected true or false, got {describe(value)}")
        return value


def block_seconds(value: int) -> int:
    """Block timestamps (`createdAt`) are stored in milliseconds by some indexer versions."""
    return value // 1000 if value > MILLISECONDS_ABOVE else value
