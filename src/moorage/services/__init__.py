"""Use cases, one function each: the only code that changes state.

Each loads state, asks the domain rules, changes state and appends its event in one
transaction; side effects (page caches) run only after the commit.
"""
