"""The web console: the Webhooks page in a browser, served on 127.0.0.1 by ``tidings console``.

It needs the ``console`` extra (``pip install 'tidings-client[console]'``: Starlette, Jinja2,
uvicorn). Only ``tidings_client.console.command`` may be imported without it: the CLI registers
that command, which loads the rest when it runs.
"""
