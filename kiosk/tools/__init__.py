"""Tools around the kiosk: the demo, walk-up scenes, benchmarks and a local hub for tests."""
