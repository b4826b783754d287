"""The chat reader over a websocket, as Twitch serves IRC: several lines per frame, tags, PING, RECONNECT."""
import asyncio

from test_chat import aio
from websockets.asyncio.server import serve

from stream.config import ChatSettings
from stream.core.worker import supervise
from stream.front.chat import ChatActions, ChatReader
from stream.queue.requests import QueuePolicy, RequestQueue


def test_reader_over_websocket_handles_pings_tags_batches_and_reconnect():
    queue = RequestQueue(QueuePolicy(cooldown_s=0), ["volcano"])
    connections, pongs, sent_by_client = [], [], []

    actions = ChatActions(aio(lambda text, user: queue.submit(text, user, f"chat:{user}")), aio(lambda: ""),
                          aio(queue.skip), aio(queue.clear))

    async def twitch(ws):
        connections.append(ws)
        async for frame in ws:
            for line in frame.split("\r\n"):
                sent_by_client.append(line)
                if line.startswith("PONG"):
                    pongs.append(line)
                if line.startswith("NICK"):  # Twitch welcomes any justinfan at once
                    await ws.send(f":tmi.twitch.tv 001 {line.split()[1]} :Welcome, GLHF!\r\n")
                if line.startswith("JOIN"):
                    nick = next(x.split()[1] for x in sent_by_client if x.startswith("NICK"))
                    # one frame, several lines: our own JOIN echo, a PING, and two chat messages
                    await ws.send(f":{nick}!{nick}@tmi JOIN #dream\r\nPING :tmi.twitch.tv\r\n"
                                  "@display-name=Ann\\sB;id=1 :ann!ann@tmi PRIVMSG #dream :!dream pizza\r\n"
                                  ":bob!bob@tmi PRIVMSG #dream :!dream qqxxzz\r\n")
                    if len(connections) == 1:
                        await asyncio.sleep(0.2)
                        await ws.send(":tmi.twitch.tv RECONNECT\r\n")

    async def run():
        async with serve(twitch, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            reader = ChatReader(ChatSettings(url=f"ws://127.0.0.1:{port}", channel="Dream"), actions)
            task = asyncio.create_task(supervise("chat", reader.session, reader.backoff, reader.failures))
            for _ in range(100):
                if len(connections) >= 2 and reader.connected.is_set():
                    break
                await asyncio.sleep(0.1)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return reader

    reader = asyncio.run(run())
    assert len(connections) >= 2  # RECONNECT made it come back
    assert pongs and pongs[0] == "PONG :tmi.twitch.tv"
    assert "JOIN #dream" in sent_by_client and "CAP END" in sent_by_client
    assert not any(x.startswith("PASS") for x in sent_by_client)  # anonymous: no password sent
    assert reader.requests_seen >= 2
    snap = queue.snapshot()
    assert snap["target"]["label"] == "pizza" and snap["target"]["user"] == "Ann B"
