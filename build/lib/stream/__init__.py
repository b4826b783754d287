"""stream: the live service around the dreamer. Frames flow one way, requests the other.

- frames: `pipeline` (queue -> `engine` dream thread -> dreamed `framebus` -> `presenter` ->
  shown `framebus`), read by `mjpeg`, `app` (/frame.jpg), `rtmp` (the encoder) and `screensaver`.
- requests: `app` (HTTP), `ws` (websocket) and `chat` (IRC/Twitch) -> `sanitize` (text from
  outside, cleaned once) -> `service` (one request path, the state) -> `requests` (queue policy).
- running: `worker` (supervised threads and tasks, backoff, rate meters), `metrics`, `origins`
  (which web pages may act), `resources` (where web/ and configs/ are).
- settings: `config` (one typed config, validated; secrets from the environment) and `cli`
  (the commands; the only module besides `config` that sees the whole config).
"""
