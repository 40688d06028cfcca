"""How a run fails, as the command line tells the user: one line and an exit code."""


class RunFailed(Exception):
    """The run could not go on (exit 1); the message is one line."""


class BadInput(Exception):
    """Bad usage or bad input (exit 2); the message is one line, said before anything is made."""
