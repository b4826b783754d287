"""stream: the live service around the dreamer. Frames flow one way, requests the other.

Rooms, lowest first; a module imports only its own room and the ones before it
(tests/test_layers.py):
- `core`: `framebus` (the latest frame, never a queue), `worker` (supervised threads and
  tasks, backoff, rate meters), `sanitize` (text from outside, cleaned once; URLs masked),
  `token_bucket`.
- `queue`: `requests` (the queue's policy), `store` (its state in SQLite between runs).
- `config` (one typed config, validated; secrets from the environment), `resources` (where
  web/ and configs/ are), `logs`, `notify` (systemd).
- `inputs`: `source` (files, cameras, screens, URLs), `screen_grab` (its child process).
  `outputs`: `mjpeg`, `rtmp` (the encoder), `overlay`, `clips`.
- `spine`: `pipeline` (queue -> `engine` dream thread -> dreamed bus -> `presenter` -> shown bus).
- `relay`: a dreamer's frames and figures through Redis (`publish`), and a front door's
  pipeline made of them (`remote`), for `serve --role dreamer|front`.
- `front`: `app` (HTTP), `ws` (websocket) and `chat` (IRC/Twitch) -> `service` (one request
  path, the state) -> the queue; `origins` (which pages may act), `metrics`, `runner` (the
  event loop's thread, signals, shutdown). `desktop`: `screensaver`, `xdisplay`.
- `render_video` (`render --source`), then `cli` (the commands; the only module besides
  `config` that sees the whole config).
"""
