"""A round-robin TCP proxy on 127.0.0.1, the simplest load balancer: each new connection goes to
the next backend in turn, skipping one that refuses the connection (a killed replica), with no
sticky routing of any kind.

    with RoundRobinProxy([("127.0.0.1", 8001), ("127.0.0.1", 8002)]) as proxy:
        proxy.port; proxy.connections   # {backend: connections sent there}
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

__all__ = ["RoundRobinProxy"]


class RoundRobinProxy:
    def __init__(self, backends: list[tuple[str, int]]) -> None:
        self.backends = list(backends)
        self.connections: Counter[tuple[str, int]] = Counter()
        self.refused: Counter[tuple[str, int]] = Counter()
        self._next = 0
        self._tasks: set[asyncio.Task] = set()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()

    def __enter__(self) -> RoundRobinProxy:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the proxy did not start")
        return self

    def __exit__(self, *_: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()
        for task in list(self._tasks):  # connections still open: closed with the proxy
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        for _ in range(len(self.backends)):
            backend = self.backends[self._next % len(self.backends)]
            self._next += 1
            try:
                streams = await asyncio.wait_for(asyncio.open_connection(*backend), timeout=2)
            except OSError:
                self.refused[backend] += 1
                continue
            self.connections[backend] += 1
            return streams
        return None

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            await self._relay(client_reader, client_writer)
        except asyncio.CancelledError:  # the proxy is stopping: the connection just closes
            client_writer.close()
        finally:
            self._tasks.discard(task)

    async def _relay(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        upstream = await self._connect()
        if upstream is None:
            client_writer.close()
            return
        up_reader, up_writer = upstream

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                try:
                    writer.close()
                except Exception:
                    pass

        await asyncio.gather(pipe(client_reader, up_writer), pipe(up_reader, client_writer))
