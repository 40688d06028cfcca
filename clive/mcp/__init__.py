"""``clive mcp``: clive's terminals served to any Model Context Protocol client, each one a recorded
session. The catalog of tools for a model (catalog.py), the tools on clive's own types (tools.py; a
command run in running.py; replies.py), the open terminals (registry.py), the HTTP guard (auth.py),
the command (command.py), and the one module that imports the ``mcp`` SDK (server.py).

May import every part below it (experiments, agent, session, terminal, safety); nothing imports it
but the command line."""
