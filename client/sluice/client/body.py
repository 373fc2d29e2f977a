"""A streamed request body that a retry can send again: what was read from the source is kept (in memory up to
SPOOL_MEMORY_BYTES, then in a temporary file), and each sending replays it before reading on from the source."""

import tempfile
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator

SPOOL_MEMORY_BYTES = 8 * 1024 * 1024
READ_BYTES = 64 * 1024


class _Spool:
    def __init__(self, memory_bytes: int) -> None:
        self._file = tempfile.SpooledTemporaryFile(max_size=memory_bytes)
        self._size = 0

    def replay(self) -> Iterator[bytes]:
        """What was kept so far; the file is left at its end, for ``keep``."""
        self._file.seek(0)
        while self._file.tell() < self._size:
            yield self._file.read(min(READ_BYTES, self._size - self._file.tell()))
        self._file.seek(self._size)

    def keep(self, chunk: bytes) -> None:
        self._file.seek(self._size)
        self._file.write(chunk)
        self._size += len(chunk)

    def close(self) -> None:
        self._file.close()


class ReplayableBody:
    """Chunks of an iterable of bytes, each time it is iterated from the first (blocking code)."""

    def __init__(self, source: Iterable[bytes], memory_bytes: int = SPOOL_MEMORY_BYTES) -> None:
        self._source = iter(source)
        self._spool = _Spool(memory_bytes)

    def __iter__(self) -> Iterator[bytes]:
        yield from self._spool.replay()
        for chunk in self._source:
            self._spool.keep(chunk)
            yield chunk

    def close(self) -> None:
        self._spool.close()


class AsyncReplayableBody:
    """Chunks of an async iterable of bytes, each time it is iterated from the first (the spool's file writes block
    briefly: memory first, then a local temporary file)."""

    def __init__(self, source: AsyncIterable[bytes], memory_bytes: int = SPOOL_MEMORY_BYTES) -> None:
        self._source = aiter(source)
        self._spool = _Spool(memory_bytes)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for kept in self._spool.replay():
            yield kept
        async for chunk in self._source:
            self._spool.keep(chunk)
            yield chunk

    def close(self) -> None:
        self._spool.close()
