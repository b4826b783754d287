"""The front door: HTTP routes, the websocket, chat, and the service state they share."""
