"""Contacts: one person across every channel, reached through identities."""
