"""Whether this process may dream, show and send now. A process on its own always may
(`ALWAYS`); a dreamer beside others on one stream may while it holds the stream's lease
(`stream/relay/lease.py`), and the dream, the presenter and the RTMP push ask it before their
work. Both answer the same three questions, so the workers never ask which one they have.
"""
from __future__ import annotations

import numpy as np


class Always:
    takeovers = 0  # times this process took the stream over: this gate never changes hands

    def held(self) -> bool:
        return True

    def wait_held(self, timeout: float) -> bool:
        return True

    def last_picture(self) -> np.ndarray | None:
        """The picture the stream showed last, to go on from after a takeover (RGB)."""
        return None


ALWAYS = Always()
