"""Command handlers, one module per data type or concern. Each module
declares its commands with @command (see table.py) next to their handlers."""
