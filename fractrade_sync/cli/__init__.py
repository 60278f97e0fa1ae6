"""The command line: the service, check, send, status and the other commands."""
