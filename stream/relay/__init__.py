"""Frames between processes: a dreamer's shown frames and figures through Redis (`publish`),
and a front door's pipeline made of them (`remote`)."""
