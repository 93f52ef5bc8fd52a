"""`moorage audit`: check a lock file's pins against an index (a client of any PEP 691 index).

lockfiles.py reads the lock file, fetch.py talks to the index, findings.py compares the two
without I/O, report.py prints the result.
"""
