"""A front door's view of the dreamer's figures (stream/relay/remote.py): read when they are
the figures this code writes, nothing when they are not (another version's, during an upgrade)."""
import json

from stream.relay.remote import RemotePipeline


def test_the_dreamers_figures_are_read_and_anything_else_is_none():
    remote = RemotePipeline(queue=None, client=None, prefix="p:")
    remote.took(json.dumps({"fps": {"dream": 4.5, "output": 25.0}, "frames": 10, "steps": 40, "last_steps": 4,
                            "dream_errors": 1, "frame_ms": {"dream": 210.0, "presenter": 3.0},
                            "health": {"frame_age_s": 0.1}}).encode())
    assert (remote.engine.rate, remote.presenter.rate, remote.engine.last_steps) == (4.5, 25.0, 4)
    assert remote.engine.frame_errors == 1 and remote.health().dreamed_age_s == 0.1
    for bad in (b'{"fps": 3}', b'{"frames": null}', b'{"health": []}', b"[1, 2]", b"not json", None):
        remote.took(bad)
        assert remote.dreamer == {} and remote.engine.rate == 0.0 and remote.health().dreamed_age_s is None
    assert not remote.health().ok  # no frame has come
