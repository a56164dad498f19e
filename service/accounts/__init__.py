"""Accounts: users, API tokens, projects and roles; who may do what, and the audit log."""
