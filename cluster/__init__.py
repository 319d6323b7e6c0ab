"""Starting or joining Ray, booting the system's actors, the driver API and the ``council`` CLI.

May import everything.
"""
