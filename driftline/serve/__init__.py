"""The serving gateway: score requests with the ``champion`` version and log every prediction.

:mod:`driftline.serve.app` builds the FastAPI app (``create_app``); :mod:`~driftline.serve.door`
checks request bodies against the contract; :mod:`~driftline.serve.watcher` follows the alias;
:mod:`~driftline.serve.writer` logs scored rows to the store in batches. Nothing is imported or
started here.
"""
