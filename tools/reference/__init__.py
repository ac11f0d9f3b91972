"""Reference-fixture generation for qwenvl (run on the GPU machine; see docs/FIXTURES.md)."""
