"""What is kept on disk: the journal and its notes, the state directory and its locks, the fills ledger."""
