"""The request queue: its rules (requests) and where its state is kept (store)."""
