"""The simulated clients' devices: speed, memory, bandwidth, availability over virtual time, and
the virtual time a round's work takes (DESIGN.md, "No sleeping to simulate slow devices")."""
