"""Test helpers: a scriptable origin, the edge as a subprocess, and a raw-socket client."""
