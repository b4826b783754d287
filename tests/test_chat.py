from dreamer.classes import RequestError
from stream.front.chat import is_garbage, parse_line, unescape_tag


def test_privmsg_with_ircv3_tags():
    line = ("@badge-info=;display-name=Ann\\sB;emotes=;id=abc\\:1 :ann!ann@ann.tmi.twitch.tv "
            "PRIVMSG #dream :!dream pizza + volcano")
    m = parse_line(line)
    assert m.command == "PRIVMSG" and m.params == ["#dream", "!dream pizza + volcano"]
    assert m.tags["display-name"] == "Ann B" and m.tags["id"] == "abc;1" and m.tags["emotes"] == ""
    assert m.nick == "ann"


def test_ping_numeric_and_garbage_lines():
    assert parse_line("PING :tmi.twitch.tv").params == ["tmi.twitch.tv"]
    assert parse_line(":tmi.twitch.tv 001 justinfan1 :Welcome").command == "001"
    assert parse_line(":tmi.twitch.tv RECONNECT").command == "RECONNECT"
    for junk in ("", "   ", ":onlyprefix", "@a=b", "@a=b :p"):
        assert parse_line(junk) is None


def test_tag_unescaping():
    assert unescape_tag(r"a\sb\:c\\d\re\nf") == "a b;c\\d\re\nf"
    assert unescape_tag("trailing\\") == "trailing"
    assert unescape_tag(r"\x") == "x"


def test_garbage_messages_are_recognised():
    assert is_garbage("!dream " + "x" * 400)
    assert is_garbage("!dream \x01\x02 binary")
    assert is_garbage("!dream " + "z\u0336\u0337\u0338" * 10)
    assert not is_garbage("!dream café crème")
    assert not is_garbage("!dream pizza + volcano")


class Lines:
    """The transport's send side, recorded: what the reader said to the server."""

    def __init__(self):
        self.sent = []

    async def send(self, line):
        self.sent.append(line)


def reader(url="irc://irc.example:6667"):
    from stream.config import ChatSettings
    from stream.front.chat import ChatReader

    return ChatReader(ChatSettings(url=url, channel="dream"), actions=None)


def handle(r, *lines):
    import asyncio

    from stream.core.worker import Backoff

    t = Lines()

    async def run():
        for line in lines:
            await r._handle(t, parse_line(line), Backoff())

    asyncio.run(run())
    return t.sent


def test_anonymous_nicks_fit_the_server():
    from stream.front.chat import anonymous_nick, max_length

    assert reader("wss://irc-ws.chat.twitch.tv:443").nick.startswith("justinfan")
    nick = reader().nick
    assert nick.startswith("dream") and len(nick) <= 9  # RFC 1459, and stock ngircd
    assert len(anonymous_nick(False, 6)) <= 6 and max_length("Nickname too long, max. 7 characters") == 7


def test_refused_nicks_are_replaced_and_the_channel_joined_after_the_welcome():
    r = reader()
    sent = handle(r, ":irc.test 432 * dream1234 :Nickname too long, max. 7 characters")
    assert sent == [f"NICK {r.nick}"] and len(r.nick) <= 7
    before = r.nick
    sent = handle(r, f":irc.test 433 * {before} :Nickname already in use")
    assert sent == [f"NICK {r.nick}"] and r.nick != before
    assert handle(r, f":irc.test 001 {r.nick} :Welcome") == ["JOIN #dream"]


def test_refusals_we_cannot_fix_end_the_session_with_the_servers_reason():
    import pytest

    from stream.front.chat import ChatRefused

    for line, reason in [(":irc.test 464 * :Password mismatch", "Password mismatch"),
                         ("ERROR :Closing link: too many connections", "too many connections"),
                         (":irc.test 474 dream12 #dream :Cannot join channel (+b)", "Cannot join")]:
        with pytest.raises(ChatRefused, match=reason):
            handle(reader(), line)


def test_the_token_goes_to_twitch_only():
    from stream.front.chat import is_twitch

    assert is_twitch("wss://irc-ws.chat.twitch.tv:443") and is_twitch("ircs://irc.chat.twitch.tv:6697")
    assert not is_twitch("irc://irc.libera.chat:6667") and not is_twitch("irc://twitch.tv.evil.example")


def aio(call):
    """A queue's call as chat's actions are: coroutine functions."""
    async def run(*args):
        return call(*args)
    return run


def commands_reader():
    from stream.config import ChatSettings
    from stream.front.chat import ChatActions, ChatReader
    from stream.queue.requests import QueuePolicy, RequestQueue

    queue = RequestQueue(QueuePolicy(cooldown_s=0), ["volcano", "jellyfish"])
    actions = ChatActions(aio(lambda text, user: queue.submit(text, user, f"chat:{user}")),
                          aio(lambda: f"now: {queue.current().label}"), aio(lambda: queue.skip().label),
                          aio(queue.clear))
    r = ChatReader(ChatSettings(url="irc://irc.example:6667", channel="dream", nick="dreambot"), actions,
                   token="oauth:x")
    r.s.reply_every_s = 0  # every reply, for the test
    return r, queue


def test_chat_commands_help_queue_and_requests():
    r, queue = commands_reader()
    say = lambda who, text, tags="": f"{tags}:{who}!{who}@h PRIVMSG #dream :{text}"  # noqa: E731
    (usage,) = handle(r, say("ann", "!dream"))
    assert usage.startswith("PRIVMSG #dream :@ann type !dream <class>") and "!queue" in usage
    assert handle(r, say("ann", "!help")) == [usage]
    (ack,) = handle(r, say("ann", "!dream pizza"))
    assert "dreaming pizza now" in ack and queue.current().label == "pizza"
    (ack,) = handle(r, say("cat", "!dream missile"))  # a name two classes share: the other is offered
    assert "dreaming missile (rocket) (#1 in the queue) - or !dream missile (projectile)" in ack
    (ack,) = handle(r, say("dan", "!dream dog"))  # a group is said as one
    assert "dreaming dog (118 kinds) (#2 in the queue)" in ack
    queue.clear()
    (err,) = handle(r, say("bob", "!dream person"))
    assert "@bob" in err and queue.snapshot()["queue"] == []
    assert handle(r, say("bob", "!queue")) == ["PRIVMSG #dream :@bob now: pizza"]
    assert handle(r, say("bob", "hello !dream volcano")) == []  # not a command


def test_only_moderators_skip_and_clear():
    r, queue = commands_reader()
    say = lambda who, text, tags="": f"{tags}:{who}!{who}@h PRIVMSG #dream :{text}"  # noqa: E731
    handle(r, say("ann", "!dream pizza"), say("ann", "!dream daisy"), say("bob", "!dream lemon"))
    (refused,) = handle(r, say("bob", "!skip"))
    assert "only moderators" in refused and queue.current().label == "pizza"
    handle(r, ":irc.example 353 dreambot = #dream :@mod +voiced bob")  # NAMES: mod is an operator
    (skipped,) = handle(r, say("mod", "!skip"))
    assert "now dreaming daisy" in skipped and queue.current().label == "daisy"
    (cleared,) = handle(r, say("mod", "!clear"))
    assert "1 removed" in cleared and queue.snapshot()["queue"] == []
    handle(r, ":mod!mod@h MODE #dream -o mod")
    assert "only moderators" in handle(r, say("mod", "!skip"))[0]
    handle(r, ":mod!mod@h MODE #dream +vo bob bob")
    assert "skipped by bob" in handle(r, say("bob", "!skip"))[0]
    assert "skipped by Ann" in handle(r, say("ann", "!skip", "@badges=moderator/1;display-name=Ann "))[0]


def test_a_skip_or_clear_the_queue_cannot_take_is_answered_not_a_dropped_session():
    from stream.config import ChatSettings
    from stream.front.chat import ChatActions, ChatReader

    def lost():
        raise RequestError("unavailable", "queue unavailable, try again")
    actions = ChatActions(aio(lambda text, user: lost()), aio(lambda: "now: volcano"), aio(lost), aio(lost))
    r = ChatReader(ChatSettings(url="irc://irc.example:6667", channel="dream", nick="dreambot"), actions,
                   token="oauth:x")
    r.s.reply_every_s = 0
    mod = "@badges=moderator/1 :mod!mod@h PRIVMSG #dream :"
    assert handle(r, mod + "!skip", mod + "!clear", mod + "!dream pizza") == \
        ["PRIVMSG #dream :@mod queue unavailable, try again"] * 3
