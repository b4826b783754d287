"""The local screen: the screensaver window and what the X server tells it."""
