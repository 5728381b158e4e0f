"""The ``digitnet`` commands, one module each. Every module has ``NAME``, ``add_parser(sub)``
(which sets ``func``) and ``run(args)``; heavy imports wait until a command runs."""

COMMANDS = ("train", "evaluate", "predict", "reproduce", "serve", "report", "compare", "sweep", "summary",
            "export")
