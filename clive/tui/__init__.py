"""The Textual viewer: replay of a recorded session and the live co-pilot, sharing their widgets.

May import every other part; only the command line imports it."""
