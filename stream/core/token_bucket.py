"""A token bucket: `rate` tokens a second, at most `burst` saved up. Each request sender's
attempt budget (stream/queue/requests.py), each websocket's message budget (stream/front/ws.py)
and each address's wrong WHIP tokens (stream/front/whip.py)."""
from __future__ import annotations


class TokenBucket:
    __slots__ = ("rate", "burst", "tokens", "last")

    def __init__(self, rate: float, burst: float, now: float):
        self.rate, self.burst, self.tokens, self.last = rate, float(burst), float(burst), now

    def wait(self, now: float) -> float:
        """The seconds until a token is there (0.0: one is), spending nothing."""
        tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def take(self, now: float) -> float:
        """Spend one token: 0.0 when there was one, else the seconds until there will be one
        (and nothing is spent)."""
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < 1:
            return (1 - self.tokens) / self.rate
        self.tokens -= 1
        return 0.0
