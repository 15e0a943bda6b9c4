"""A plain `/2` node line that may name a key twice, found by a count.

orjson (like most readers) keeps the last of two equal keys, so a line that names one twice
means different nodes to different readers. Lines read as JSON are read exactly
(`loads_once_per_key`), which refuses it naming the key; a plain node line (the writer's shape,
its record parsed by orjson, its events from the bytes) gets a count instead: once its record
validates, every key in it is one of the model's and every string one of its words, so the
record holds exactly `plain_head_quotes(...)` quote characters, and any key written twice adds
two. A line whose count differs is read as JSON, exactly.
"""

from __future__ import annotations

import typing

from pydantic import BaseModel

from payouts.snapshot.format2 import NodeLine, NodePower
from payouts.snapshot.schema import Node


def _quotes(model: type[BaseModel]) -> int:
    """Quote characters of a validated record of `model` without escapes: two per key, two per
    string word (every string of a node record is a Literal word)."""
    count = 0
    for field in model.model_fields.values():
        count += 2
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            count += _quotes(annotation)
        elif typing.get_origin(annotation) is typing.Literal:
            count += 2
        elif annotation is str:
            raise TypeError(f"{model.__name__} has a free string: the count cannot be known")
    return count


#: the keys "node" and "power_at_start", then the node record (a plain line's record: without
#: its events)
_HEAD_QUOTES = 2 * (len(NodeLine.model_fields) - 1) + _quotes(Node)
#: quotes of a plain line's record by whether its power_at_start is an object (else null)
_PLAIN_HEAD_QUOTES = (_HEAD_QUOTES, _HEAD_QUOTES + _quotes(NodePower))


def plain_head_quotes(document: dict) -> int:
    """The quote characters of a plain node line's record (`split_node_line`'s head) that names
    no key twice, once it validates; `document` is the record as read."""
    return _PLAIN_HEAD_QUOTES[document.get("power_at_start") is not None]
