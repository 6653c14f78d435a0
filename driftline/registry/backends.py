"""The few MLflow registry calls driftline needs, through three backends.

``_MlflowBackend`` goes through ``MlflowClient`` (any tracking URI MLflow supports);
``_RestBackend`` talks to an ``http(s)://`` tracking server's REST API with the standard library
only, and ``driftline.registry.sqlite._SqliteBackend`` reads the embedded SQLite database, so
``driftline models list | show | rollback`` do not pay MLflow's ~1.2 s import. All raise
``_NotFoundError`` for a missing model, version or alias, ``TransientError`` when the server
cannot be reached and ``DriftlineError`` otherwise; URLs in messages have their password masked.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from driftline.errors import DriftlineError, TransientError
from driftline.secrets import mask_url


def _first_line(text: object) -> str:
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    line = lines[0] if lines else str(text)
    return line if len(line) <= 300 else line[:297] + "..."


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


@contextmanager
def _env_default(**values: str) -> Iterator[None]:
    """Set environment variables that are unset, for the duration of the block only."""
    added = [k for k in values if k not in os.environ]
    for k in added:
        os.environ[k] = values[k]
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


@dataclass
class _ModelState:
    aliases: dict[str, str]
    tags: dict[str, str]


@dataclass
class _VersionData:
    version: str
    run_id: str | None
    tags: dict[str, str]
    aliases: tuple[str, ...]
    created_ms: int
    source: str
    status: str


# Bounds on what a listing may return (a registry or run that is larger is refused, not truncated).
MAX_PAGES = 1000
MAX_ARTIFACTS = 100_000
MAX_ARTIFACT_DEPTH = 32


class _NotFoundError(Exception):
    """The registered model, version or alias does not exist (translated by the caller)."""


class _MlflowBackend:
    """Registry calls through ``MlflowClient`` (any tracking URI MLflow supports)."""

    def __init__(self, uri: str, name: str) -> None:
        self.uri = uri
        self.name = name
        self._client_obj: Any = None

    @property
    def client(self) -> Any:
        if self._client_obj is None:
            from mlflow import MlflowClient

            with self.translate():
                self._client_obj = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        return self._client_obj

    @contextmanager
    def translate(self) -> Iterator[None]:
        """Turn MLflow and transport errors into _NotFoundError or a one-line DriftlineError."""
        from mlflow.exceptions import MlflowException

        try:
            yield
        except MlflowException as e:
            if getattr(e, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
                raise _NotFoundError(_first_line(e.message)) from None
            text = _first_line(e.message)
            if "failed with exception" in text or "Max retries exceeded" in text or "Connection" in text:
                raise TransientError(f"MLflow at {mask_url(self.uri)} is unreachable: {text}") from None
            if "database is locked" in text:
                raise TransientError(f"MLflow ({mask_url(self.uri)}) is busy: {text}") from None
            raise DriftlineError(f"MLflow ({mask_url(self.uri)}): {text}") from None
        except OSError as e:
            import requests

            if isinstance(e, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
                raise TransientError(f"MLflow at {mask_url(self.uri)} is unreachable: {_first_line(e)}") from None
            raise DriftlineError(f"MLflow ({mask_url(self.uri)}): {_first_line(e)}") from None

    def model_state(self) -> _ModelState:
        with self.translate():
            rm = self.client.get_registered_model(self.name)
        return _ModelState(aliases={a: str(v) for a, v in (rm.aliases or {}).items()}, tags=dict(rm.tags or {}))

    @staticmethod
    def _version_data(mv: Any) -> _VersionData:
        return _VersionData(
            version=str(mv.version),
            run_id=mv.run_id or None,
            tags=dict(mv.tags or {}),
            aliases=tuple(mv.aliases or ()),
            created_ms=int(mv.creation_timestamp or 0),
            source=str(mv.source or ""),
            status=str(mv.status or ""),
        )

    def version(self, version: str) -> _VersionData:
        with self.translate():
            return self._version_data(self.client.get_model_version(self.name, version))

    def search_versions(self) -> list[_VersionData]:
        out: list[_VersionData] = []
        token = None
        with self.translate():
            while True:
                page = self.client.search_model_versions(f"name = '{_quote(self.name)}'", page_token=token)
                out.extend(self._version_data(mv) for mv in page)
                token = page.token
                if not token:
                    return out

    def run_metrics(self, run_id: str) -> dict[str, float]:
        with self.translate():
            return dict(self.client.get_run(run_id).data.metrics)

    def list_artifacts(self, run_id: str) -> list[tuple[str, int | None]]:
        out: list[tuple[str, int | None]] = []

        def walk(path: str | None) -> None:
            for info in self.client.list_artifacts(run_id, path):
                if info.is_dir:
                    walk(info.path)
                else:
                    out.append((info.path, info.file_size))

        with self.translate():
            walk(None)
        return out

    def set_model_tag(self, key: str, value: str) -> None:
        with self.translate():
            self.client.set_registered_model_tag(self.name, key, value)

    def set_alias(self, alias: str, version: str) -> None:
        with self.translate():
            self.client.set_registered_model_alias(self.name, alias, version)

    def delete_alias(self, alias: str) -> None:
        with self.translate():
            self.client.delete_registered_model_alias(self.name, alias)


class _RestBackend:
    """Registry calls over MLflow's REST API with the standard library (no MLflow import).

    Honours MLflow's client settings: ``MLFLOW_TRACKING_TOKEN`` or ``MLFLOW_TRACKING_USERNAME`` /
    ``MLFLOW_TRACKING_PASSWORD``, ``MLFLOW_TRACKING_INSECURE_TLS``, ``MLFLOW_TRACKING_SERVER_CERT_PATH``,
    ``MLFLOW_HTTP_REQUEST_TIMEOUT`` (default 120 s) and ``MLFLOW_HTTP_REQUEST_MAX_RETRIES``
    (default 2 here, with 0.2 s doubling back-off, for refused connections and 429/5xx answers).
    """

    def __init__(self, uri: str, name: str) -> None:
        self.uri = uri.rstrip("/")
        self.name = name

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "User-Agent": "driftline"}
        token = os.environ.get("MLFLOW_TRACKING_TOKEN")
        user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif user and password:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        return headers

    def _ssl_context(self) -> ssl.SSLContext | None:
        if not self.uri.startswith("https:"):
            return None
        if os.environ.get("MLFLOW_TRACKING_INSECURE_TLS", "").lower() == "true":
            return ssl._create_unverified_context()  # the user asked for it
        return ssl.create_default_context(cafile=os.environ.get("MLFLOW_TRACKING_SERVER_CERT_PATH") or None)

    def call(self, method: str, path: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        url = f"{self.uri}/api/2.0/mlflow/{path}"
        data = None
        if method == "GET":
            url += "?" + urllib.parse.urlencode(payload)
        else:
            data = json.dumps(payload).encode()
        timeout = float(os.environ.get("MLFLOW_HTTP_REQUEST_TIMEOUT") or 120)
        retries = int(os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES") or 2)
        context = self._ssl_context()
        for attempt in range(retries + 1):
            request = urllib.request.Request(url, data=data, method=method, headers=self._headers())
            try:
                with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
                    body = response.read()
                return json.loads(body) if body else {}
            except urllib.error.HTTPError as e:
                body = e.read().decode(errors="replace")
                try:
                    err = json.loads(body)
                except ValueError:
                    err = {"message": body}
                if err.get("error_code") == "RESOURCE_DOES_NOT_EXIST":
                    raise _NotFoundError(_first_line(err.get("message") or f"{path}: not found")) from None
                if (e.code == 429 or e.code >= 500) and attempt < retries:
                    time.sleep(0.2 * 2**attempt)
                    continue
                kind = TransientError if e.code == 429 or e.code >= 500 else DriftlineError
                message = _first_line(err.get("message") or body)
                raise kind(f"MLflow at {mask_url(self.uri)} answered {e.code} to {path}: {message}") from None
            except (urllib.error.URLError, OSError) as e:
                if attempt < retries:
                    time.sleep(0.2 * 2**attempt)
                    continue
                reason = getattr(e, "reason", e)
                raise TransientError(f"MLflow at {mask_url(self.uri)} is unreachable: {_first_line(reason)}") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def model_state(self) -> _ModelState:
        rm = self.call("GET", "registered-models/get", {"name": self.name}).get("registered_model", {})
        return _ModelState(
            aliases={a["alias"]: str(a["version"]) for a in rm.get("aliases", [])},
            tags={t["key"]: t.get("value", "") for t in rm.get("tags", [])},
        )

    @staticmethod
    def _version_data(mv: Mapping[str, Any], version: str = "") -> _VersionData:
        return _VersionData(
            version=str(mv.get("version", version)),
            run_id=mv.get("run_id") or None,
            tags={t["key"]: t.get("value", "") for t in mv.get("tags", [])},
            aliases=tuple(mv.get("aliases", [])),
            created_ms=int(mv.get("creation_timestamp") or 0),
            source=str(mv.get("source", "")),
            status=str(mv.get("status", "")),
        )

    def version(self, version: str) -> _VersionData:
        mv = self.call("GET", "model-versions/get", {"name": self.name, "version": version}).get("model_version", {})
        return self._version_data(mv, version)

    def search_versions(self) -> list[_VersionData]:
        out: list[_VersionData] = []
        payload = {"filter": f"name = '{_quote(self.name)}'", "max_results": 1000}
        for _ in range(MAX_PAGES):
            page = self.call("GET", "model-versions/search", payload)
            out.extend(self._version_data(mv) for mv in page.get("model_versions", []))
            if not page.get("next_page_token"):
                return out
            payload = {**payload, "page_token": page["next_page_token"]}
        raise DriftlineError(
            f"MLflow at {mask_url(self.uri)}: model '{self.name}' has more than {MAX_PAGES} pages of versions"
        )

    def list_artifacts(self, run_id: str) -> list[tuple[str, int | None]]:
        out: list[tuple[str, int | None]] = []

        def walk(path: str | None, depth: int) -> None:
            payload: dict[str, Any] = {"run_id": run_id, **({} if path is None else {"path": path})}
            for _ in range(MAX_PAGES):
                page = self.call("GET", "artifacts/list", payload)
                for info in page.get("files", []):
                    if info.get("is_dir") and depth < MAX_ARTIFACT_DEPTH:
                        walk(info["path"], depth + 1)
                    elif not info.get("is_dir"):
                        size = info.get("file_size")
                        out.append((info["path"], None if size is None else int(size)))
                    if len(out) > MAX_ARTIFACTS:
                        raise DriftlineError(f"run {run_id} has more than {MAX_ARTIFACTS} artifacts")
                if not page.get("next_page_token"):
                    return
                payload = {**payload, "page_token": page["next_page_token"]}

        walk(None, 0)
        return out

    def run_metrics(self, run_id: str) -> dict[str, float]:
        run = self.call("GET", "runs/get", {"run_id": run_id}).get("run", {})
        return {m["key"]: float(m["value"]) for m in run.get("data", {}).get("metrics", [])}

    def set_model_tag(self, key: str, value: str) -> None:
        self.call("POST", "registered-models/set-tag", {"name": self.name, "key": key, "value": value})

    def set_alias(self, alias: str, version: str) -> None:
        self.call("POST", "registered-models/alias", {"name": self.name, "alias": alias, "version": version})

    def delete_alias(self, alias: str) -> None:
        self.call("DELETE", "registered-models/alias", {"name": self.name, "alias": alias})
