"""A user's own project, as the tests use it: not installed, put on the path by the tests."""
