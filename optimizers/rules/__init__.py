"""Population update rules, one file per optimizer family, all with the same shape."""
