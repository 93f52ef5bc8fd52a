"""The transparency log: RFC 6962 Merkle tree over the events, C2SP tiles and checkpoints."""
