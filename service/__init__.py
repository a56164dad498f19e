"""The optisweep service: REST API, controller and database (filled in by issue 3)."""
