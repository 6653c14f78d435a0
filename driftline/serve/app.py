"""The gateway's FastAPI app: ``/predict`` with the champion, health, readiness, metrics, admin.

``create_app`` builds it; nothing is contacted until the app starts. On start (FastAPI
lifespan) the store's tables are created, the log writer and the champion watcher are started
and the champion is loaded; on shutdown the watcher stops and the writer drains every row it
accepted. Scores come from :func:`driftline.training.row_scorer` on the rows the door admitted
(checked at load to equal :func:`driftline.training.score` exactly), so they equal offline
scoring of the same rows. Logged rows are checked again as ingest checks a file before they are
appended, in the writer's batches; a row that fails is quarantined with its reason, never lost.
The label is ``score >= settings.training.threshold``: 1/0, or true/false when the contract's
positive label is a boolean.
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations (Request,
# Response) as objects, and they are imported inside create_app.
import hmac
import logging
import os
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from driftline.contract import Contract
from driftline.rollout import bucket, serves_challenger
from driftline.serve.door import MAX_BODY_BYTES, MAX_RECORDS, Door, DoorError, Problem
from driftline.serve.metrics import ServeMetrics
from driftline.serve.shadow import Shadow
from driftline.serve.watcher import Served, Watcher
from driftline.serve.writer import DEFAULT_BATCH_ROWS, DEFAULT_CAPACITY, DEFAULT_FLUSH_SECONDS, LogWriter

log = logging.getLogger("driftline.serve")

VARIANT = "champion"
CHALLENGER = "challenger"
SHADOW = "shadow"
INLINE_BODY_BYTES = 16 * 1024
"""Bodies up to this size are scored on the event loop (about a millisecond); larger ones in a thread."""
ADMIN_TOKEN_ENV = "DRIFTLINE_ADMIN_TOKEN"
_FROM_ENV: Any = object()


def _driftline_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("driftline")
    except PackageNotFoundError:
        return "unknown"


def label_values(contract: Contract) -> tuple[Any, Any]:
    """The (positive, negative) label a prediction shows: True/False for a boolean target, else 1/0."""
    return (True, False) if isinstance(contract.target.positive, bool) else (1, 0)


class Gateway:
    """Everything one app serves with: contract, threshold, watcher, writer, metrics."""

    def __init__(
        self,
        settings: Any,
        contract: Contract,
        *,
        poll_seconds: float,
        admin_token: str | None,
        queue_capacity: int,
        batch_rows: int,
        flush_seconds: float,
        max_body_bytes: int,
        max_records: int,
    ) -> None:
        self.settings = settings
        self.contract = contract
        self.threshold = float(settings.training.threshold)
        self.poll_seconds = poll_seconds
        self.admin_token = admin_token or None
        self.max_body_bytes = max_body_bytes
        self.max_records = max_records
        self.door = Door(contract, max_bytes=max_body_bytes, max_records=max_records)
        self.labels = label_values(contract)
        self.queue_capacity = queue_capacity
        self.batch_rows = batch_rows
        self.flush_seconds = flush_seconds
        self.writer: LogWriter | None = None
        self.watcher: Watcher | None = None
        self.challenger: Watcher | None = None
        self.rollout_log: LogWriter | None = None
        self.shadow: Shadow | None = None
        self.rollout: Any = None  # the model's Rollout row as last read (phase, share)
        self._rollouts: Any = None
        self._follow_stop = threading.Event()
        self._follower: threading.Thread | None = None
        self.metrics = ServeMetrics(lambda: 0 if self.writer is None else self.writer.depth)
        self.model_name = settings.model_name
        self._store: Any = None

    # -- life cycle ----------------------------------------------------------------------
    def open(self) -> None:
        """Create the store's tables, start the writer, load the champion, start the watcher."""
        from driftline.registry import ModelRegistry
        from driftline.store import Store

        self._store = Store.from_settings(self.settings, self.contract).create()
        self.writer = LogWriter(
            self._store_rows,
            capacity=self.queue_capacity,
            batch_rows=self.batch_rows,
            flush_seconds=self.flush_seconds,
            on_written=lambda n: self.metrics.written.inc(n),
            on_dropped=lambda n: self.metrics.dropped.inc(n),
        ).start()
        registry = ModelRegistry.from_settings(self.settings)
        self.watcher = Watcher(
            registry,
            poll_seconds=self.poll_seconds,
            on_swap=lambda s: self.metrics.serving(s.model, s.version),
            on_failure=lambda _m: self.metrics.reload_failures.inc(),
            make_scorer=self._scorer,
        )
        result = self.watcher.check()
        if self.watcher.current is None and result.error is None:
            log.warning("no %s for model %s yet; /readyz answers 503 until one is set", VARIANT, self.model_name)
        self.watcher.start()
        self._open_rollout(registry)

    def _open_rollout(self, registry: Any) -> None:
        """Follow the ``challenger`` alias and the rollout row; start the shadow scorer and its log."""
        from driftline.registry.rollouts import RolloutStore

        self.rollout_log = LogWriter(
            self._store.append_rollout_scores,
            capacity=self.queue_capacity * 2,
            batch_rows=self.batch_rows,
            flush_seconds=self.flush_seconds,
            on_dropped=lambda n: self.metrics.dropped.inc(n),
        ).start()
        self.shadow = Shadow(
            self._log_shadow,
            capacity=self.queue_capacity,
            on_skipped=lambda n: self.metrics.shadow_skipped.inc(n),
            on_error=lambda n: self.metrics.errors.labels(reason="shadow").inc(n),
        ).start()
        self.challenger = Watcher(
            registry,
            alias="challenger",
            poll_seconds=self.poll_seconds,
            on_failure=lambda _m: self.metrics.reload_failures.inc(),
            make_scorer=self._scorer,
        )
        self._rollouts = RolloutStore(registry.store)
        self._follow_once()
        self._follow_stop.clear()
        self._follower = threading.Thread(target=self._follow, name="driftline-rollout-follower", daemon=True)
        self._follower.start()

    def _follow_once(self) -> None:
        """Re-read the rollout row, and load the challenger while a rollout is active."""
        try:
            r = self._rollouts.get(self.model_name)
        except Exception as e:  # the store is down: keep the last view, say so once per poll
            log.error("cannot read the rollout state: %s", " ".join(str(e).split())[:200])
            return
        if r is not None and r.active and self.challenger is not None:
            self.challenger.check()
        before = self.rollout
        if r is not None and (
            before is None or (r.rollout_id, r.phase, r.share) != (before.rollout_id, before.phase, before.share)
        ):
            log.warning("rollout %s of version %s: %s at %g%%", r.rollout_id, r.challenger, r.phase, r.share)
            self.metrics.canary_share.set(r.share if r.active else 0.0)
        self.rollout = r

    def _follow(self) -> None:
        while not self._follow_stop.wait(self.poll_seconds):
            self._follow_once()

    def _live_challenger(self) -> tuple[Any, Served | None]:
        """The active rollout and its loaded challenger (None when it is not the rollout's version)."""
        r = self.rollout
        if r is None or not r.active or self.challenger is None:
            return r, None
        ch = self.challenger.current
        return r, (ch if ch is not None and ch.version == r.challenger else None)

    def close(self) -> None:
        """Stop following the aliases; drain the shadow scorer and the log writers."""
        self._follow_stop.set()
        if self._follower is not None:
            self._follower.join(10)
        if self.watcher is not None:
            self.watcher.stop()
        if self.challenger is not None:
            self.challenger.stop()
        if self.shadow is not None:
            self.shadow.stop()
        if self.rollout_log is not None:
            self.rollout_log.stop()
        if self.writer is not None:
            left = self.writer.stop()
            log.warning("log writer drained: %d rows written, %d not", self.writer.written, left)
        if self._store is not None:
            self._store.dispose()

    def _scorer(self, pipeline: Any) -> Any:
        """The row scorer of a newly loaded pipeline (on the watcher's thread, off the request path)."""
        from driftline.training import row_scorer

        scorer, path = row_scorer(pipeline, self.contract)
        if path != "direct":
            log.warning("scoring through a DataFrame per request (this pipeline has no direct row path)")
        return scorer

    def _store_rows(self, rows: list[dict[str, Any]]) -> None:
        """Check logged rows as ingest checks a file, append the good ones and quarantine the rest."""
        import pandas as pd

        from driftline.ingest import check_predictions
        from driftline.store import MODEL_COLUMNS

        columns = [*self.contract.row_columns, *MODEL_COLUMNS]
        frame = pd.DataFrame.from_records(rows, columns=columns)
        checked = check_predictions(frame, self.contract, "gateway")
        with self._store.engine.begin() as conn:
            self._store.append_predictions(checked.good, conn)
            if checked.bad_reasons:
                self._store.quarantine(checked.bad_raw, checked.bad_reasons, "gateway", conn)
        if checked.bad_reasons:
            self.metrics.quarantined.inc(len(checked.bad_reasons))
            log.error("log writer: %d rows quarantined (%s)", len(checked.bad_reasons), checked.bad_reasons[0])

    @property
    def served(self) -> Served | None:
        return None if self.watcher is None else self.watcher.current

    # -- scoring -------------------------------------------------------------------------
    def predict(self, body: bytes, started: float) -> tuple[int, Any, dict[str, str]]:
        """Admit, score and log one request: (status, JSON payload, extra headers)."""
        try:
            admitted = self.door.admit(body)
        except DoorError as e:
            self.metrics.errors.labels(reason="too_large" if e.status == 413 else "invalid").inc()
            return e.status, {"detail": [p.to_dict() for p in e.problems]}, {}
        served = self.served  # read once: this request keeps this model whatever the watcher does
        if served is None or self.writer is None:
            self.metrics.errors.labels(reason="no_model").inc()
            return 503, {"detail": f"no {VARIANT} model loaded yet"}, {"Retry-After": "1"}
        rows = admitted.records
        rollout, challenger = self._live_challenger()
        c = self.contract
        variants = [VARIANT] * len(rows)
        if challenger is not None and rollout.phase == "canary":
            variants = [
                CHALLENGER if serves_challenger(self.model_name, r[c.entity_id], rollout.share) else VARIANT
                for r in rows
            ]
        try:
            scores, versions, failed = self._score(rows, variants, served, challenger)
        except Exception as e:
            self.metrics.errors.labels(reason="scoring").inc()
            message = " ".join(str(e).split())[:300]
            log.error("scoring failed with version %s: %s: %s", served.version, type(e).__name__, message)
            return 500, {"detail": f"scoring failed: {type(e).__name__}: {message}"}, {}
        pos, neg = self.labels
        latency_ms = (time.perf_counter() - started) * 1000.0
        rid = c.request_id
        logged: list[dict[str, Any]] = []
        out: list[dict[str, Any]] = []
        for row, s, variant, version in zip(rows, scores, variants, versions, strict=True):
            label = pos if s >= self.threshold else neg
            logged.append(
                {
                    **row,
                    "model_name": served.model,
                    "model_version": version,
                    "variant": variant,
                    "score": s,
                    "predicted_label": str(label),
                    "latency_ms": latency_ms,
                }
            )
            out.append(
                {
                    "request_id": row[rid],
                    "score": s,
                    "label": label,
                    "model": served.model,
                    "version": version,
                    "variant": variant,
                }
            )
        if not self.writer.offer(logged):
            self.metrics.errors.labels(reason="backpressure").inc()
            return 503, {"detail": "the prediction log is full or closing; retry later"}, {"Retry-After": "1"}
        if rollout is not None and rollout.active:
            self._log_rollout(rollout, logged, failed, challenger, served)
        for variant in set(variants):
            self.metrics.records.labels(variant=variant).inc(variants.count(variant))
        self.metrics.latency.labels(variant=variants[0]).observe(time.perf_counter() - started)
        return 200, (out[0] if admitted.single else {"predictions": out}), {}

    def _score(
        self, rows: list[dict[str, Any]], variants: list[str], champion: Served, challenger: Served | None
    ) -> tuple[list[float], list[str], list[str]]:
        """Scores and versions per row; a challenger that fails falls back to the champion (ids listed)."""
        scores: list[float] = [0.0] * len(rows)
        versions = [champion.version] * len(rows)
        failed: list[str] = []
        mine = [i for i, v in enumerate(variants) if v == CHALLENGER]
        if mine and challenger is not None:
            try:
                got = (challenger.scorer or self._scorer(challenger.pipeline))([rows[i] for i in mine]).tolist()
                for i, s in zip(mine, got, strict=True):
                    scores[i], versions[i] = s, challenger.version
            except Exception as e:  # never fail a request for the challenger: the champion answers
                message = " ".join(str(e).split())[:200]
                log.error("challenger version %s failed, champion answered: %s", challenger.version, message)
                self.metrics.errors.labels(reason="challenger").inc(len(mine))
                failed = [rows[i][self.contract.request_id] for i in mine]
                for i in mine:
                    variants[i] = VARIANT
                mine = []
        taken = set(mine)
        rest = [i for i in range(len(rows)) if i not in taken]
        if rest:
            got = (champion.scorer or self._scorer(champion.pipeline))([rows[i] for i in rest]).tolist()
            for i, s in zip(rest, got, strict=True):
                scores[i] = s
        return scores, versions, failed

    def _log_rollout(
        self, rollout: Any, logged: list[dict[str, Any]], failed: list[str], challenger: Any, champion: Any
    ) -> None:
        """Keep what each variant answered during a rollout; hand the champion's rows to the shadow scorer."""
        c = self.contract
        now = int(time.time() * 1e6)
        rows = [
            {
                "request_id": r[c.request_id],
                "variant": r["variant"],
                "model_name": r["model_name"],
                "model_version": r["model_version"],
                "entity_id": r[c.entity_id],
                "score": r["score"],
                "predicted_label": r["predicted_label"],
                "latency_ms": r["latency_ms"],
                "error": None,
                "served_us": now,
            }
            for r in logged
        ]
        rows += [
            {
                "request_id": rid,
                "variant": CHALLENGER,
                "model_name": self.model_name,
                "model_version": rollout.challenger,
                "entity_id": "",
                "score": None,
                "predicted_label": None,
                "latency_ms": None,
                "error": "challenger failed; the champion answered",
                "served_us": now,
            }
            for rid in failed
        ]
        if self.rollout_log is not None:
            self.rollout_log.offer(rows)
        if challenger is None or self.shadow is None:
            return
        if rollout.phase == "shadow":
            share = self.settings.rollout.shadow_share
            keep = [i for i, r in enumerate(logged) if share >= 100 or bucket(self.model_name, r[c.request_id]) < share]
            other = challenger
        else:  # canary: the champion mirrors the challenger's answers, so a step compares the same rows
            keep = [i for i, r in enumerate(logged) if r["variant"] == CHALLENGER]
            other = champion
        if keep:
            feats = [{n: logged[i].get(n) for n in c.feature_names} for i in keep]
            meta = [
                {
                    "request_id": logged[i][c.request_id],
                    "entity_id": logged[i][c.entity_id],
                    "model_name": self.model_name,
                    "served_us": now,
                }
                for i in keep
            ]
            self.shadow.offer(other, feats, meta)

    def _log_shadow(self, rows: list[dict[str, Any]]) -> None:
        """The shadow scorer's results, as rollout rows with ``variant=shadow``."""
        pos, neg = self.labels
        out = [
            dict(
                r,
                variant=SHADOW,
                predicted_label=None if r["score"] is None else str(pos if r["score"] >= self.threshold else neg),
            )
            for r in rows
        ]
        if self.rollout_log is not None and not self.rollout_log.offer(out):
            self.metrics.shadow_skipped.inc(len(out))

    # -- admin ---------------------------------------------------------------------------
    def authorised(self, header: str | None) -> int:
        """200 when ``header`` carries the admin token; 404 when admin is disabled; 401 otherwise."""
        if self.admin_token is None:
            return 404
        scheme, _, given = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.admin_token.encode()):
            return 401
        return 200


def create_app(
    settings: Any,
    contract: Contract | None = None,
    *,
    poll_seconds: float = 5.0,
    admin_token: str | None = _FROM_ENV,
    queue_capacity: int = DEFAULT_CAPACITY,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    flush_seconds: float = DEFAULT_FLUSH_SECONDS,
    max_body_bytes: int = MAX_BODY_BYTES,
    max_records: int = MAX_RECORDS,
) -> Any:
    """The gateway app for ``settings`` (contract from ``settings.contract`` unless given).

    ``admin_token`` defaults to ``$DRIFTLINE_ADMIN_TOKEN``; without one the admin endpoints are
    disabled (404).
    """
    from fastapi import FastAPI, Request
    from fastapi.concurrency import run_in_threadpool
    from fastapi.responses import JSONResponse, Response

    if contract is None:
        from driftline.contract import load_contract
        from driftline.errors import ConfigError

        if settings.contract is None:
            raise ConfigError("no contract: set 'contract:' in driftline.yaml to serve")
        contract = load_contract(settings.contract)
    token = os.environ.get(ADMIN_TOKEN_ENV) if admin_token is _FROM_ENV else admin_token
    gw = Gateway(
        settings,
        contract,
        poll_seconds=poll_seconds,
        admin_token=token,
        queue_capacity=queue_capacity,
        batch_rows=batch_rows,
        flush_seconds=flush_seconds,
        max_body_bytes=max_body_bytes,
        max_records=max_records,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(gw.open)
        try:
            yield
        finally:
            await run_in_threadpool(gw.close)

    app = FastAPI(title="driftline gateway", version=_driftline_version(), lifespan=lifespan)
    app.state.gateway = gw

    def too_large(message: str) -> JSONResponse:
        gw.metrics.errors.labels(reason="too_large").inc()
        gw.metrics.requests.labels(variant=VARIANT, status="413").inc()
        return JSONResponse({"detail": [Problem("body", "size", message).to_dict()]}, status_code=413)

    @app.post("/predict")
    async def predict(request: Request) -> Response:
        """Score one record or ``{"records": [...]}`` with the champion and log each row."""
        started = time.perf_counter()
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > gw.max_body_bytes:
            return too_large(f"body is {declared} bytes; the limit is {gw.max_body_bytes}")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > gw.max_body_bytes:
                return too_large(f"body is over the limit of {gw.max_body_bytes} bytes")
        if len(body) <= INLINE_BODY_BYTES:  # a few records: score on the loop, no thread hop
            status, payload, headers = gw.predict(bytes(body), started)
        else:
            status, payload, headers = await run_in_threadpool(gw.predict, bytes(body), started)
        gw.metrics.requests.labels(variant=VARIANT, status=str(status)).inc()
        return JSONResponse(payload, status_code=status, headers=headers)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        """200 while the process runs."""
        return {"status": "ok"}

    @app.get("/readyz")
    def readyz() -> Response:
        """200 when a champion is loaded, else 503."""
        served = gw.served
        if served is None:
            return JSONResponse({"status": "not ready", "detail": f"no {VARIANT} model loaded"}, status_code=503)
        return JSONResponse({"status": "ready", "model": served.model, "version": served.version})

    @app.get("/version")
    def version() -> dict[str, Any]:
        """The model name, the version loaded and driftline's version."""
        served = gw.served
        return {
            "model": gw.model_name,
            "version": None if served is None else served.version,
            "variant": VARIANT,
            "threshold": gw.threshold,
            "driftline": _driftline_version(),
        }

    @app.get("/metrics")
    def metrics() -> Response:
        """Prometheus exposition text."""
        text, content_type = gw.metrics.render()
        return Response(text, media_type=content_type)

    @app.post("/admin/reload")
    async def reload(request: Request) -> Response:
        """Re-read the champion alias now and load it (``Authorization: Bearer $DRIFTLINE_ADMIN_TOKEN``)."""
        status = gw.authorised(request.headers.get("authorization"))
        if status == 404:
            return JSONResponse({"detail": f"admin endpoints are disabled (set {ADMIN_TOKEN_ENV})"}, status_code=404)
        if status == 401:
            return JSONResponse(
                {"detail": "missing or wrong admin token"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        if gw.watcher is None:
            return JSONResponse({"detail": "the gateway is not started"}, status_code=503)
        result = await run_in_threadpool(lambda: gw.watcher.check(force=True))
        served = gw.served
        payload = {
            "alias_version": result.alias_version,
            "serving": None if served is None else served.version,
            "changed": result.changed,
            "error": result.error,
        }
        code = 200 if result.error is None else (409 if result.alias_version is not None else 503)
        return JSONResponse(payload, status_code=code)

    return app


def app_from_env() -> Any:
    """App factory for ``uvicorn --factory`` (several workers): settings from ``$DRIFTLINE_CONFIG``.

    The poll interval comes from ``$DRIFTLINE_SERVE_POLL_SECONDS`` (default 5).
    """
    from driftline.settings import load_settings

    poll = float(os.environ.get("DRIFTLINE_SERVE_POLL_SECONDS", "5"))
    return create_app(load_settings(), poll_seconds=poll)
