from stream.chat import is_garbage, parse_line, unescape_tag


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
