"""The chat reader: `!dream TEXT` from IRC (irc://, ircs://) or Twitch's IRC-over-websocket (wss://).

Anonymous and read-only by default: on Twitch as justinfanNNNNN with no password, elsewhere
as dreamNNNN (9 characters: RFC 1459's limit, which stock servers such as ngircd keep).
With a nick (and on Twitch TWITCH_OAUTH_TOKEN) it also replies, at most once per
`reply_every_s`; the token goes to Twitch only (a PASS to another server is refused by it).
Commands: `!dream TEXT` asks, `!dream` alone and `!help` explain, `!queue` says what is next,
and moderators (Twitch badges, IRC channel operators) may `!skip` and `!clear`. It joins once the
server has welcomed it (001), answers PING, obeys RECONNECT, unescapes IRCv3 tags, and
splits frames that hold several lines. A nick the server refuses (432 too long or invalid,
433 in use) is replaced by another that fits; a refusal it cannot fix (464 bad password, an
ERROR line) ends the session with the server's own reason in the log. `session()` is one
connection; `stream.core.worker.supervise` runs it again after a backoff when it ends. Long,
binary or zalgo messages are ignored. Requests go to the same queue as the web page's,
rate-limited per chat user.
"""
from __future__ import annotations

import asyncio
import logging
import random
import re
import ssl
import time
import unicodedata
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import WebSocketException

from dreamer.classes import RequestError

from ..config import ChatSettings
from ..core.sanitize import clean_name
from ..core.worker import Backoff, again
from ..queue.requests import Ack

log = logging.getLogger(__name__)

MAX_LINE = 16_384  # Twitch lines with tags can be long; anything longer is not a chat line
MAX_TEXT = 300
TAG_ESCAPES = {":": ";", "s": " ", "\\": "\\", "r": "\r", "n": "\n"}


RFC_NICKLEN = 9
REPLY_MAX = 400  # characters of one reply (Twitch cuts at 500)
CLOSE_TIMEOUT_S = 0.5  # a chat server that does not answer our close is cut off (websockets' default: 10 s)


class Reconnect(Exception):
    """The server asked us to reconnect (Twitch RECONNECT)."""


class ChatRefused(Exception):
    """The server refused us for a reason we cannot fix by ourselves (its words in the message)."""


@dataclass
class Message:
    command: str
    params: list[str] = field(default_factory=list)
    prefix: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def nick(self) -> str:
        return self.prefix.split("!", 1)[0]


def unescape_tag(value: str) -> str:
    out, i = [], 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value):
            out.append(TAG_ESCAPES.get(value[i + 1], value[i + 1]))
            i += 2
        elif value[i] == "\\":
            i += 1  # a trailing lone backslash is dropped (IRCv3)
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def parse_line(line: str) -> Message | None:
    """One IRC line (no CRLF) -> Message; None for garbage."""
    tags: dict[str, str] = {}
    if line.startswith("@"):
        raw, _, line = line[1:].partition(" ")
        for item in raw.split(";"):
            k, _, v = item.partition("=")
            if k:
                tags[k] = unescape_tag(v)
    prefix = ""
    if line.startswith(":"):
        prefix, _, line = line[1:].partition(" ")
    head, sep, trailing = line.partition(" :")
    params = head.split()
    if not params:
        return None
    if sep:
        params.append(trailing)
    return Message(params[0].upper(), params[1:], prefix, tags)


def is_garbage(text: str) -> bool:
    """Too long, control characters, or mostly combining marks (zalgo)."""
    if len(text) > MAX_TEXT or any(unicodedata.category(c) == "Cc" for c in text):
        return True
    marks = sum(1 for c in text if unicodedata.combining(c))
    return marks > 3 and marks > len(text) / 4


class Transport:
    """Lines in and out over TCP, TLS or a websocket."""

    @classmethod
    async def open(cls, url: str) -> "Transport":
        u = urlsplit(url)
        t = cls()
        if u.scheme in ("ws", "wss"):
            t.ws = await ws_connect(url, open_timeout=15, close_timeout=CLOSE_TIMEOUT_S, max_size=2**20)
            t.reader = t.writer = None
        else:
            tls = ssl.create_default_context() if u.scheme == "ircs" else None
            port = u.port or (6697 if tls else 6667)
            t.reader, t.writer = await asyncio.wait_for(
                asyncio.open_connection(u.hostname, port, ssl=tls, limit=MAX_LINE * 2), 15)
            t.ws = None
        return t

    async def send(self, line: str) -> None:
        if self.ws is not None:
            await self.ws.send(line)
        else:
            self.writer.write(line.encode("utf-8", "replace")[:510] + b"\r\n")
            await self.writer.drain()

    async def lines(self) -> AsyncIterator[str]:
        if self.ws is not None:
            async for frame in self.ws:  # one frame may hold several lines
                text = frame if isinstance(frame, str) else frame.decode("utf-8", "replace")
                for line in text.split("\r\n"):
                    if line:
                        yield line
            return
        while True:
            try:
                raw = await self.reader.readuntil(b"\n")
            except asyncio.IncompleteReadError:
                return  # closed by the server
            except asyncio.LimitOverrunError as e:  # an absurd line: skip it
                await self.reader.readexactly(e.consumed)
                continue
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line:
                yield line

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        elif self.writer is not None:
            self.writer.close()


def is_twitch(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host == "twitch.tv" or host.endswith(".twitch.tv")


def anonymous_nick(twitch: bool, length: int = RFC_NICKLEN) -> str:
    """Twitch reads chat for any justinfan<digits>; elsewhere a short nick that fits `length`."""
    if twitch:
        return f"justinfan{random.randint(10000, 99999)}"
    digits = max(1, min(4, length - 5))
    return f"dream{random.randint(10 ** (digits - 1), 10 ** digits - 1)}"[:max(2, length)]


def max_length(reason: str) -> int:
    """The length a 432 asks for, when it says ("max. 9 characters"); RFC 1459's 9 otherwise."""
    numbers = [int(n) for n in re.findall(r"\d+", reason) if 1 < int(n) < 64]
    return numbers[0] if numbers else RFC_NICKLEN


@dataclass
class ChatActions:
    """What chat may do to the stream (the service provides them; tests a bare queue)."""

    # each a coroutine function: a shared queue answers off the event loop
    request: Callable[[str, str], Awaitable[Ack]]  # (text, user) -> Ack, or raises RequestError
    queue_summary: Callable[[], Awaitable[str]]  # "now: volcano (12 s) - next: pizza, daisy"
    skip: Callable[[], Awaitable[str]]  # plays the next one now; its label (RequestError: a shared queue lost)
    clear: Callable[[], Awaitable[int]]  # empties the queue; how many went (RequestError likewise)


OPERATOR_PREFIXES = "~&@"  # owner, admin, operator in a NAMES reply


class ChatReader:
    failures = (OSError, asyncio.TimeoutError, WebSocketException, Reconnect, ChatRefused)

    def __init__(self, settings: ChatSettings, actions: ChatActions, token: str | None = None):
        self.s, self.actions, self.token = settings, actions, token
        self.operators: set[str] = set()  # IRC channel operators (lower-case nicks)
        self.channel = "#" + settings.channel.lower().lstrip("#")
        self.twitch = is_twitch(settings.url)
        # Replies need a nick of our own; on Twitch also its OAuth token (anonymous readers can't talk).
        self.can_reply = bool(settings.nick) and (bool(token) or not self.twitch)
        self.nick = settings.nick if self.can_reply else anonymous_nick(self.twitch)
        self.connected = asyncio.Event()
        # a try at least every 2 s: a chat server back from a restart is read again within
        # seconds (with 1, 2, 4, 5 s the soak's IRC restarts took 5.0-6.05 s after ngircd was
        # back); a refused connect costs the server nothing
        self.backoff = Backoff(first=0.5, cap=2.0)
        self.requests_seen = 0
        self._last_reply = 0.0

    async def session(self, backoff: Backoff) -> None:
        """One connection, from connect to close."""
        self.connected.clear()
        self.operators.clear()  # NAMES on the next join says who they are now
        t = await Transport.open(self.s.url)
        try:
            await t.send("CAP REQ :twitch.tv/tags twitch.tv/commands")
            if self.can_reply and self.twitch:
                await t.send(f"PASS {self.token}")  # only Twitch wants it
            await t.send(f"NICK {self.nick}")
            await t.send(f"USER {self.nick} 0 * :dreamstream")
            await t.send("CAP END")  # standard servers hold registration until this; Twitch ignores it
            async for line in t.lines():
                if len(line) > MAX_LINE:
                    continue
                msg = parse_line(line)
                if msg is not None:
                    await self._handle(t, msg, backoff)
        finally:
            self.connected.clear()
            await t.close()

    async def _handle(self, t: Transport, msg: Message, backoff: Backoff) -> None:
        reason = msg.params[-1] if msg.params else ""
        if msg.command == "PING":
            await t.send("PONG :" + reason)
        elif msg.command == "RECONNECT":
            raise Reconnect("the server asked us to reconnect")
        elif msg.command == "001":  # welcome: registered, now we may join
            await t.send(f"JOIN {self.channel}")
        elif msg.command == "JOIN" and msg.nick.lower() == self.nick.lower():
            log.info("chat: reading %s on %s as %s%s", self.channel, self.s.url, self.nick, again(backoff.reset()))
            self.connected.set()
        elif msg.command in ("432", "433"):  # erroneous / in-use nick: try one that fits
            if self.can_reply:
                raise ChatRefused(f"the server refused the nick {self.nick!r}: {reason}")
            self.nick = anonymous_nick(self.twitch, max_length(reason) if msg.command == "432" else len(self.nick))
            log.info("chat: the server said %r; trying the nick %s", reason, self.nick)
            await t.send(f"NICK {self.nick}")
        elif msg.command in ("464", "465", "471", "473", "474", "475", "403"):
            raise ChatRefused(f"{msg.command} {reason}")  # bad password, banned, channel closed to us
        elif msg.command == "ERROR":
            raise ChatRefused(f"the server closed the link: {reason}")
        elif msg.command == "353" and len(msg.params) >= 4 and msg.params[-2].lower() == self.channel:
            for name in msg.params[-1].split():  # NAMES: "@mod +voiced plain"
                if name[0] in OPERATOR_PREFIXES:
                    self.operators.add(name.lstrip(OPERATOR_PREFIXES + "+%").lower())
        elif msg.command == "MODE" and len(msg.params) >= 3 and msg.params[0].lower() == self.channel:
            self._mode(msg.params[1], msg.params[2:])
        elif msg.command in ("PART", "QUIT", "KICK"):
            self.operators.discard((msg.params[1] if msg.command == "KICK" and len(msg.params) > 1
                                    else msg.nick).lower())
        elif msg.command == "PRIVMSG" and len(msg.params) == 2 and msg.params[0].lower() == self.channel:
            await self._privmsg(t, msg)

    def _mode(self, modes: str, args: list[str]) -> None:
        """Track +o/-o: who may !skip and !clear on a plain IRC server."""
        adding, args = True, list(args)
        for c in modes:
            if c in "+-":
                adding = c == "+"
            elif c in "ovhbkleIq" and args:  # modes that take an argument
                nick = args.pop(0).lower()
                if c == "o":
                    (self.operators.add if adding else self.operators.discard)(nick)

    def is_moderator(self, msg: Message) -> bool:
        badges = msg.tags.get("badges", "")
        return (msg.tags.get("mod") == "1" or "broadcaster/" in badges or "moderator/" in badges
                or msg.nick.lower() in self.operators)

    async def _privmsg(self, t: Transport, msg: Message) -> None:
        text = msg.params[1].strip()
        if is_garbage(text):
            return
        command, _, rest = text.partition(" ")
        command, rest = command.lower(), rest.strip()
        user = clean_name(msg.tags.get("display-name") or msg.nick)  # tags may hold CR/LF: never echo them raw
        s, a = self.s, self.actions
        usage = (f"type {s.prefix} <class> to dream it, e.g. {s.prefix} volcano or {s.prefix} pizza + jellyfish; "
                 f"{s.queue_command} shows what plays next")
        if command == s.prefix.lower() and rest:
            await self._request(t, user, rest)
        elif command in (s.prefix.lower(), s.help_command.lower()):
            await self._reply(t, f"@{user} {usage}")
        elif command == s.queue_command.lower():
            await self._reply(t, f"@{user} {await a.queue_summary()}")
        elif command in (s.skip_command.lower(), s.clear_command.lower()):
            if not self.is_moderator(msg):
                await self._reply(t, f"@{user} only moderators may {command}")
                return
            try:
                if command == s.skip_command.lower():
                    log.info("chat: %s skipped to %s", user, label := await a.skip())
                    await self._reply(t, f"skipped by {user}: now dreaming {label}")
                else:
                    log.info("chat: %s cleared the queue (%d)", user, n := await a.clear())
                    await self._reply(t, f"queue cleared by {user} ({n} removed)")
            except RequestError as e:  # a shared queue that cannot be reached
                await self._reply(t, f"@{user} {e.message}")

    async def _request(self, t: Transport, user: str, text: str) -> None:
        self.requests_seen += 1
        try:
            ack = await self.actions.request(text, user)
        except RequestError as e:
            tips = ", ".join(e.suggestions[:3])
            await self._reply(t, f"@{user} {e.message}" + (f" - try {tips}" if tips else ""))
            return
        log.info("chat: %s asked for %s", user, ack.target.label)
        n = ack.target.group_size
        reply = (f"@{user} dreaming {ack.target.label}" + (f" ({n} kinds)" if n else "")
                 + (f" (#{ack.position} in the queue)" if ack.position else " now"))
        offer = "".join(f" - or {self.s.prefix} {other}" for other in ack.also[:1])
        await self._reply(t, reply + offer if len(reply + offer) <= REPLY_MAX else reply)

    async def _reply(self, t: Transport, text: str) -> None:
        now = time.monotonic()
        if not self.can_reply or now - self._last_reply < self.s.reply_every_s:
            return  # read-only, or over Twitch's 20 messages per 30 s
        self._last_reply = now
        await t.send(f"PRIVMSG {self.channel} :{text[:REPLY_MAX]}")
