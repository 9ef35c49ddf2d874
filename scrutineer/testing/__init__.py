"""Helpers for tests, benchmarks and the demo, kept out of the runtime modules: the fixture web
(a real HTTP server on loopback addresses, :mod:`scrutineer.testing.fixture_web`) and the demo
dataset (:mod:`scrutineer.testing.demo`). Nothing in a scan imports them."""
