"""Alembic migrations for optisweep's database; run them with `optisweep db upgrade`."""
