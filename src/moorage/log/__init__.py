"""The transparency log: RFC 6962 Merkle tree over the events (work in progress: the tree
and its proofs so far; tiles, checkpoints and the verifier come next)."""
