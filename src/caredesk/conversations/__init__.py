"""Conversations and messages: the case, its timeline, and the one entry every channel uses."""
