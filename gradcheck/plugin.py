"""pytest plugin (entry point ``pytest11``): options, marker, fixture and summary for gradcheck."""
