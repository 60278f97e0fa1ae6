"""How the agent is doing: the report's figures, its page and its charts."""
