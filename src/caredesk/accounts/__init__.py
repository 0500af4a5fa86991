"""Accounts (tenants), agents, teams, inboxes and API tokens."""
