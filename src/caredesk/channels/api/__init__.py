"""The api channel."""
