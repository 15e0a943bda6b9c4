"""The parts folder: one finished file per answer, so that a stopped build resumes."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson

from payouts.files import write_atomic


class Parts:
    def __init__(self, folder: Path, fingerprint: dict) -> None:
        self.folder = folder
        #: parts found from an earlier run (what a resumed build did not have to download)
        self.reused = 0
        self._written: set[str] = set()
        meta = folder / "meta.json"
        if folder.exists():
            try:
                same = orjson.loads(meta.read_bytes()) == fingerprint
            except (OSError, orjson.JSONDecodeError):
                same = False
            if not same:  # another period, URL or paging: nothing in it can be reused
                shutil.rmtree(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if not meta.exists():
            self._write(meta, fingerprint)

    @staticmethod
    def _write(path: Path, value: object) -> None:
        write_atomic(path, orjson.dumps(value))

    def get(self, name: str) -> Any:
        try:
            value = orjson.loads((self.folder / f"{name}.json").read_bytes())
        except FileNotFoundError:
            return None
        except orjson.JSONDecodeError:
            return None  # cannot happen with atomic writes; refetch rather than trust it
        self.reused += name not in self._written
        self._written.add(name)
        return value

    def put(self, name: str, value: object) -> None:
        self._write(self.folder / f"{name}.json", value)
        self._written.add(name)

    def discard(self, prefix: str) -> None:
        for path in self.folder.glob(f"{prefix}.*"):
            path.unlink()

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


# -- the builder -------------------------------------------------------------------------
