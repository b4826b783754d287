"""A screen as raw RGB frames on stdout, read by FFmpeg's x11grab through PyAV, in a process of
its own: `screen:DISPLAY` sources run this (stream/inputs/source.py).

Why a process of its own: with torch and OpenCV loaded, x11grab crashed the process in the X
libraries each wheel bundles, and loading PyAV first instead broke OpenCV's windows (seen with
av 18, torch 2.14, opencv-python 4.x). Here only PyAV is loaded.

    python -m stream.inputs.screen_grab :0 30      # prints "W H", then W*H*3 bytes a frame
"""
from __future__ import annotations

import sys


def main() -> int:
    import av

    display, fps = sys.argv[1], sys.argv[2]
    try:
        container = av.open(display, format="x11grab", timeout=10.0, options={"framerate": fps, "draw_mouse": "0"})
    except (av.error.FFmpegError, OSError) as e:
        print(f"cannot open screen {display} ({getattr(e, 'strerror', None) or e})", file=sys.stderr)
        return 2
    out = sys.stdout.buffer
    try:
        for i, frame in enumerate(container.decode(video=0)):
            rgb = frame.to_ndarray(format="rgb24")
            if i == 0:
                out.write(f"{rgb.shape[1]} {rgb.shape[0]}\n".encode())
            out.write(rgb.tobytes())
            out.flush()
    except (BrokenPipeError, KeyboardInterrupt):  # the reader went away: done
        pass
    finally:
        container.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
