"""What a WHEP offer and the [webrtc] ICE servers must be (stream/front/whep.py), before any peer."""
import pytest

from stream.front.whep import OfferRefused, check_media, ice_server


def test_stun_and_turn_servers_are_read_with_the_turn_password_apart():
    assert ice_server("stun:stun.example.org:3478").urls == "stun:stun.example.org:3478"
    turn = ice_server("turn:ann:s3cr%t@turn.example.org:3478?transport=udp")
    assert (turn.urls, turn.username, turn.credential) == ("turn:turn.example.org:3478?transport=udp", "ann", "s3cr%t")
    for bad in ("http://turn.example.org", "turn:turn.example.org:3478", "stun"):
        with pytest.raises(ValueError) as e:
            ice_server(bad)
        assert "webrtc.ice_servers" in str(e.value)
    with pytest.raises(ValueError) as e:
        ice_server("turnx:ann:hunter2@turn.example.org")
    assert "hunter2" not in str(e.value)


@pytest.mark.parametrize("lines, ok", [
    (["m=video 9 UDP/TLS/RTP/SAVPF 96"], True),
    (["m=audio 9 UDP/TLS/RTP/SAVPF 111", "m=video 9 UDP/TLS/RTP/SAVPF 96"], True),
    ([], False),
    (["m=audio 9 UDP/TLS/RTP/SAVPF 111"], False),
    (["m=video 9 UDP/TLS/RTP/SAVPF 96"] * 2, False),
    (["m=video 9 UDP/TLS/RTP/SAVPF 96", "m=application 9 UDP/DTLS/SCTP webrtc-datachannel"], False),
])
def test_an_offer_is_one_video_line_and_at_most_one_audio_line(lines, ok):
    sdp = "\r\n".join(["v=0", *lines, ""])
    if ok:
        check_media(sdp)
    else:
        with pytest.raises(OfferRefused) as e:
            check_media(sdp)
        assert e.value.status == 400


def test_a_viewers_keyframe_request_reaches_the_shared_encoder():
    """A PLI or FIR in RTCP (a viewer lost a keyframe's packets) asks the one encoder for a
    keyframe: aiortc's own encoder, which handed packets bypass, would never make one."""
    import asyncio

    from aiortc import RTCPeerConnection
    from aiortc.rtp import RTCP_PSFB_FIR, RTCP_PSFB_PLI, RtcpPsfbPacket

    from stream.config import WebrtcSettings
    from stream.core.framebus import FrameBus
    from stream.front.whep import Whep
    from stream.outputs.webrtc import H264Packets

    async def asked(fmt: int) -> bool:
        encoder = H264Packets(FrameBus(encode=False), 25.0, 500)  # not started: only asked
        whep = Whep(encoder, WebrtcSettings())
        viewer = RTCPeerConnection()
        viewer.addTransceiver("video", direction="recvonly")
        await viewer.setLocalDescription(await viewer.createOffer())
        await whep.offer(viewer.localDescription.sdp, "198.51.100.7")
        (pc, _), = whep.peers.values()
        sender = pc.getSenders()[0]
        before = encoder._keyframe.is_set()
        await sender._handle_rtcp_packet(RtcpPsfbPacket(fmt=fmt, ssrc=1, media_ssrc=sender._ssrc))
        passed_on = encoder._keyframe.is_set()
        encoder._keyframe.clear()  # as the encoder does when it makes one
        await sender._handle_rtcp_packet(RtcpPsfbPacket(fmt=fmt, ssrc=1, media_ssrc=sender._ssrc))
        again = encoder._keyframe.is_set()  # asked again at once: one viewer gets one in KEYFRAME_S
        await whep.close_all()
        await viewer.close()
        return not before and passed_on and not again
    assert asyncio.run(asked(RTCP_PSFB_PLI)) and asyncio.run(asked(RTCP_PSFB_FIR))
