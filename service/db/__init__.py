"""Database plumbing: declarative base, engines and sessions, migrations."""
