"""One module per `segnet-edge` subcommand: HELP, add_arguments(parser), run(args)."""
