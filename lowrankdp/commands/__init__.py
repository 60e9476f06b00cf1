"""CLI subcommands; one module per subcommand, each with ``register(subparsers)``."""
