"""The chaos harness (scripts/chaos): the service against the simulators under a seeded schedule of faults. A
development tool beside the tests, not part of the installed package (setup.cfg excludes it)."""
