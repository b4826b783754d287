"""The frame pipeline: the dream thread and the presenter between the buses."""
