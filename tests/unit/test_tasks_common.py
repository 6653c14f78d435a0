"""The retry condition: transient failures are retried, permanent ones fail at once."""

from __future__ import annotations

import pytest

from driftline.errors import ConfigError, DriftlineError, InputError, RefusedError, TransientError
from tasks._common import slot_name, transient


class _State:
    def __init__(self, error: BaseException | None) -> None:
        self.error = error

    def result(self):
        if self.error is not None:
            raise self.error
        return 1


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (TransientError("MLflow at http://x is unreachable"), True),
        (TransientError("registry is busy: move #3 in flight; retry"), True),
        (ConnectionRefusedError("refused"), True),  # a raw I/O error from a library
        (TimeoutError("timed out"), True),
        (DriftlineError("version must be a positive whole number"), False),
        (RefusedError("version 2 may not become champion", code="not_promotable"), False),
        (InputError("missing columns"), False),
        (ConfigError("bad settings"), False),
        (ValueError("bug"), False),
        (KeyError("bug"), False),
        (None, False),
    ],
)
def test_only_transient_failures_are_retried(error, retried):
    assert transient(None, None, _State(error)) is retried


def test_store_and_registry_unreachable_are_transient():
    from driftline.contract import parse_contract
    from driftline.store import Store
    from tests.conftest import TINY_CONTRACT

    store = Store("postgresql+psycopg://nobody:secret@127.0.0.1:1/none", parse_contract(TINY_CONTRACT))
    with pytest.raises(TransientError) as err:
        store.create()
    assert "secret" not in str(err.value) and "***" in str(err.value)


def test_slot_name_is_per_model():
    assert slot_name("churn") == "driftline-model-churn"
    assert slot_name("a b/c") == "driftline-model-a_b_c"
