"""The pure core: names, versions, filenames, metadata, decisions and rules.

Nothing in this package performs I/O or reads the time; callers pass both in.
"""
