"""The chaos suite: faults injected into a real server at random times, every result audited."""
