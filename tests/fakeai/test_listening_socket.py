"""The server's listening socket: connections accepted by asyncio's own event loop send without Nagle's
algorithm, as uvloop's do, so an SSE frame never waits for the client's delayed ACK."""

import asyncio
import socket

from fakeai.__main__ import listening_socket
from fakeai.settings import Settings


async def nodelay_of_an_accepted_connection(sock: socket.socket) -> int:
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set_result(writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(handle, sock=sock)
    _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
    try:
        return await asyncio.wait_for(accepted, timeout=10)
    finally:
        writer.close()
        server.close()
        await server.wait_closed()


def test_connections_accepted_by_asyncios_own_loop_have_nagle_off():
    sock = listening_socket(Settings(host="127.0.0.1", port=0))
    assert sock.proto == socket.IPPROTO_TCP
    with asyncio.Runner(loop_factory=asyncio.SelectorEventLoop) as runner:
        assert runner.run(nodelay_of_an_accepted_connection(sock)) != 0
