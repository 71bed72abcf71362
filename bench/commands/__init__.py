"""Sub-commands of ``python -m bench``; each module provides ``add_parser`` and ``run``."""
