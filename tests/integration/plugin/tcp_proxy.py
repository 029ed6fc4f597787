#!/usr/bin/env python3
"""Forward TCP connections from 127.0.0.1:LISTEN_PORT to 127.0.0.1:TARGET_PORT.

The plugin tests put it between a broker and PostgreSQL and kill it to
simulate a lost database without stopping the shared database.

usage: tcp_proxy.py LISTEN_PORT TARGET_PORT
"""
import asyncio
import sys


async def pipe(reader, writer):
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def handle(client_reader, client_writer, target_port):
    try:
        server_reader, server_writer = await asyncio.open_connection(
            "127.0.0.1", target_port)
    except OSError:
        client_writer.close()
        return
    await asyncio.gather(pipe(client_reader, server_writer),
                         pipe(server_reader, client_writer))


async def main():
    if len(sys.argv) != 3:
        sys.exit("usage: tcp_proxy.py LISTEN_PORT TARGET_PORT")
    listen_port, target_port = int(sys.argv[1]), int(sys.argv[2])
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, target_port), "127.0.0.1", listen_port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
