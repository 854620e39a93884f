"""Real servers the tests talk to over loopback (no mocks)."""
