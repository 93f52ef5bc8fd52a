"""The command line: parses arguments, calls one service, prints the result."""
