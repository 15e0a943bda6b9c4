"""Reading an entity page by page, every finished page kept as a part, counts checked.

Entity tables are paged by offset in a stable order; event tables by primary-key ranges (ids
after the last one seen), so that the database walks the id index over the period only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from payouts.sources.errors import IndexerDataError, IndexerQueryError
from payouts.sources.graphql import GraphQLClient
from payouts.sources.indexer.options import Progress
from payouts.sources.indexer.parts import Parts
from payouts.sources.indexer.queries import Entity


def where_label(offset: int, index: int, item: object, id_key: str) -> str:
    """Where a record sits in the answers, for errors: its page, its place and its id."""
    label = f" ({id_key} {item.get(id_key)!r})" if isinstance(item, dict) and id_key in item else ""
    return f"page at offset {offset}, item {index}{label}"


class Pager:
    def __init__(self, gql: GraphQLClient, progress: Progress, store: Callable[[], Parts]) -> None:
        self.gql = gql
        self.progress = progress
        self._store = store

    @property
    def store(self) -> Parts:
        return self._store()

    def count(self, key: str, entity: Entity, where: dict) -> int:
        cached = self.store.get(f"{key}.count")
        if cached is not None:
            return cached
        data = self.gql.query(entity.count_document, {"where": where}, what=f"count of {entity.field}")
        connection = data.get(f"{entity.field}Connection")
        total = connection.get("totalCount") if isinstance(connection, dict) else None
        if type(total) is not int or total < 0:
            raise IndexerQueryError(f"{self.gql.url}: count of {entity.field}: no totalCount in the answer")
        self.store.put(f"{key}.count", total)
        return total

    def paged(
        self,
        key: str,
        entity: Entity,
        where: dict,
        parse: Callable[[list, int], list],
        *,
        page_size: int,
        counted: bool = True,
        progress: str | None = None,
    ) -> Iterator[list]:
        """Parsed rows page by page, finished parts first; with `counted`, the total is checked
        against `<field>Connection.totalCount` so that a page lost to paging cannot go unseen."""
        expected = self.count(key, entity, where) if counted else None
        if progress is not None and expected is not None:
            self.progress.start(progress, expected)
        seen = page = 0
        while True:
            name = f"{key}.{page:05d}"
            part = self.store.get(name)
            if part is None:
                offset = page * page_size
                what = f"{entity.field} (offset {offset})"
                data = self.gql.query(
                    entity.document, {"where": where, "limit": page_size, "offset": offset}, what=what
                )
                items = data.get(entity.field)
                if not isinstance(items, list):
                    raise IndexerQueryError(f"{self.gql.url}: {what}: expected a list under {entity.field!r}")
                part = {"rows": parse(items, offset), "full": len(items) == page_size}
                self.store.put(name, part)
            rows = part["rows"]
            seen += len(rows)
            if progress is not None:
                self.progress.advance(progress, len(rows))
            yield rows
            if not part["full"]:
                break
            page += 1
        if expected is not None and seen != expected:
            self.store.discard(key)  # refetch this entity on the next run
            raise IndexerDataError(
                entity.field,
                f"query {key}",
                f"paging returned {seen} records but the indexer counts {expected}: it changed "
                f"during the download; run the build again",
            )

    def ranged(
        self,
        key: str,
        entity: Entity,
        where: dict,
        parse: Callable[[list, int], list],
        *,
        page_size: int,
        progress: str | None = None,
    ) -> Iterator[list]:
        """Parsed rows of an event table page by page in id (chain) order, finished parts
        first. `where` holds `id_gte`/`id_lt` bounds: each page asks for the ids after the last
        one seen, so the database walks the primary-key index over the period's blocks only,
        whatever the size of the table. The pages must add up to `totalCount` over the same range."""
        expected = self.count(key, entity, where)
        if progress is not None:
            self.progress.start(progress, expected)
        seen = page = 0
        last: str | None = None
        while True:
            name = f"{key}.{page:05d}"
            part = self.store.get(name)
            if part is None:
                offset = page * page_size
                asked = dict(where) if last is None else {**where, "id_gt": last}
                what = f"{entity.field} (offset {offset}, after id {last or where.get('id_gte')})"
                data = self.gql.query(entity.keyset_document, {"where": asked, "limit": page_size}, what=what)
                items = data.get(entity.field)
                if not isinstance(items, list):
                    raise IndexerQueryError(f"{self.gql.url}: {what}: expected a list under {entity.field!r}")
                rows = parse(items, offset)
                newest: str | None = items[-1]["id"] if items else last  # parse checked every id
                if items and last is not None and newest is not None and not newest > last:
                    raise IndexerDataError(entity.field, f"page at offset {offset}", "ids do not increase")
                part = {"rows": rows, "items": len(items), "full": len(items) == page_size, "last": newest}
                self.store.put(name, part)
            seen += part["items"]
            if progress is not None:
                self.progress.advance(progress, part["items"])
            yield part["rows"]
            if not part["full"]:
                break
            last = part["last"]
            page += 1
        if seen != expected:
            self.store.discard(key)
            raise IndexerDataError(
                entity.field,
                f"query {key}",
                f"paging returned {seen} records but the indexer counts {expected}: it changed "
                f"during the download; run the build again",
            )
