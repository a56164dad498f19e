"""The controller: owns sweep state, expands search spaces, dispatches trials."""
