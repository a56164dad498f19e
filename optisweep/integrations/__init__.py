"""Integrations with training frameworks; each needs its framework installed (an extra)."""
