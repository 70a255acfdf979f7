"""Accounts: sign-in, sessions, passwords, the second factor, user management."""
