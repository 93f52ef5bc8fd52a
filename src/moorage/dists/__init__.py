"""Reading distribution files: what an uploaded archive holds and whether it is safe.

Reads bytes from a file and decides with the domain's rules; no database, no blob store.
"""
