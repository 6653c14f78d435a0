"""Streams for the policy replay (bench/bench_replay.py): the simulator's, and one of our own.

A :class:`Stream` is what the replay needs: logged traffic, delayed outcomes, the contract, the
first Monday, how many weeks, and the week the concept changes (``None`` for stable traffic).

``loan_stream`` is a second domain written here, independent of ``driftline.simulate``:
instalment-loan applications with other column names, a text label (``repayment`` is
``"defaulted"`` or ``"repaid"``, positive ``"defaulted"``), labels that arrive 2–7 days after
the application (first-payment default), and a sudden concept change in week ``onset``:

* an interest-rate shock: variable-rate mortgage payments jump, so mortgage holders, the safer
  applicants before, are now the riskier ones; variable incomes (``gig``, ``self_employed``)
  default somewhat more;
* loan stacking through brokers: a ``broker`` application with 3 or more recent credit
  inquiries is now very risky (before the onset inquiries barely matter);
* a government guarantee turns the old ``small_business`` risk premium into a discount.

The mix of applicants hardly moves (the broker channel's share goes from 10% to 13%), so the
inputs barely drift: a model trained before the onset keeps scoring the same inputs the old way
and gets the new defaults wrong. Only labels reveal the change. Two variants: the shock as
written (the default rate roughly doubles), and ``hold_rate=True`` (the new concept's intercept
moved so the default rate stays what the old concept gives: who defaults changes, not how many).
The applications and every random draw are the same in both.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from driftline.contract import Contract, Feature, Target

START = "2026-01-05"  # a Monday


@dataclass
class Stream:
    """Traffic and outcomes of one replayed stream, with its contract and known drift onset."""

    name: str
    traffic: pd.DataFrame
    outcomes: pd.DataFrame
    contract: Contract
    start: pd.Timestamp
    weeks: int
    onset: int | None  # first week (0-based) with the new concept; None: stable
    description: str
    meta: dict[str, Any] = field(default_factory=dict)

    def labelled_week(self, week: int) -> pd.DataFrame:
        """Every logged row of week ``week`` (Monday 00:00 to Monday 00:00) with its outcome."""
        c = self.contract
        lo = self.start + pd.Timedelta(weeks=week)
        hi = lo + pd.Timedelta(weeks=1)
        t = self.traffic[c.timestamp]
        rows = self.traffic[(t >= lo) & (t < hi)]
        labels = self.outcomes[[c.request_id, c.target.name]]
        return rows.merge(labels, on=c.request_id, how="inner", validate="one_to_one")


def simulator_stream(scenario: str, weeks: int, users: int, seed: int, onset: int | None) -> Stream:
    """``driftline.simulate`` churn traffic; ``onset`` is passed as ``scenario@onset``."""
    from driftline.simulate import simulate

    spec = scenario if onset is None else f"{scenario}@{onset}"
    sim = simulate(weeks=weeks, users=users, scenarios=spec, seed=seed, start=START)
    return Stream(
        name=f"simulator {spec}",
        traffic=sim.traffic,
        outcomes=sim.outcomes,
        contract=sim.contract,
        start=pd.Timestamp(START),
        weeks=weeks,
        onset=onset,
        description=f"simulate({weeks}, {users}, {spec!r}, seed={seed}); concept ramps in over 4 weeks"
        if onset is not None
        else f"simulate({weeks}, {users}, {spec!r}, seed={seed})",
        meta=sim.meta,
    )


# -- the loan stream ----------------------------------------------------------------------
_EMPLOYMENT = ("salaried", "self_employed", "gig", "retired", "student")
_EMPLOYMENT_P = (0.55, 0.14, 0.13, 0.10, 0.08)
_EMPLOYMENT_FX = (0.0, 0.25, 0.35, -0.2, 0.3)
_PURPOSE = ("debt_consolidation", "home_improvement", "car", "education", "medical", "small_business", "travel")
_PURPOSE_P = (0.32, 0.16, 0.18, 0.09, 0.07, 0.08, 0.10)
_PURPOSE_FX = (0.15, -0.2, -0.15, 0.1, 0.25, 0.8, 0.2)
_REGION = ("north", "south", "east", "west", "central")
_REGION_P = (0.22, 0.24, 0.18, 0.2, 0.16)
_REGION_FX = (0.0, 0.15, -0.1, 0.0, 0.05)
_CHANNEL = ("branch", "web", "app", "broker")
_CHANNEL_P_OLD = (0.25, 0.35, 0.30, 0.10)
_CHANNEL_P_NEW = (0.24, 0.34, 0.29, 0.13)


def loan_contract() -> Contract:
    """The contract of the loan stream (name "loans"): other ids, time column and a text label."""

    def num(low: float, high: float, text: str, **kw: Any) -> Feature:
        return Feature(type="numeric", range=(low, high), description=text, **kw)

    def cat(values: tuple[str, ...], text: str, **kw: Any) -> Feature:
        return Feature(type="categorical", vocabulary=list(values), description=text, **kw)

    return Contract(
        name="loans",
        entity_id="applicant_id",
        request_id="application_id",
        timestamp="applied_at",
        target=Target(name="repayment", positive="defaulted"),
        segment="region",
        features={
            "loan_amount": num(500, 60_000, "Requested principal.", key=True),
            "annual_income": num(3_000, 600_000, "Declared yearly income."),
            "debt_to_income": num(0, 2.0, "Monthly debt service over monthly income, incl. this loan."),
            "credit_history_months": num(0, 720, "Months since the first credit line."),
            "recent_inquiries": num(0, 40, "Credit inquiries in the last 90 days."),
            "employment_type": cat(_EMPLOYMENT, "Main income source.", closed=True),
            "loan_purpose": cat(_PURPOSE, "Stated purpose.", closed=True),
            "region": cat(_REGION, "Sales region.", closed=True),
            "channel": cat(_CHANNEL, "Where the application came in.", closed=True),
            "has_mortgage": Feature(type="boolean", description="Applicant holds a mortgage."),
        },
    )


def _rate_offset(z_new: np.ndarray, z_old: np.ndarray) -> float:
    """The shift of ``z_new`` whose mean probability equals that of ``z_old`` (bisection)."""

    def rate(z: np.ndarray) -> float:
        return float(np.mean(1.0 / (1.0 + np.exp(-z))))

    want, lo, hi = rate(z_old), -10.0, 10.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if rate(z_new + mid) < want else (lo, mid)
    return (lo + hi) / 2


def _pick(rng: np.random.Generator, n: int, p: tuple[float, ...]) -> np.ndarray:
    return rng.choice(len(p), size=n, p=np.asarray(p) / np.sum(p))


def loan_stream(
    weeks: int = 22, per_week: int = 2500, seed: int = 7, onset: int | None = 9, hold_rate: bool = False
) -> Stream:
    """Loan applications, ``per_week`` a week on average, with a sudden concept change at ``onset``.

    With ``hold_rate`` the new concept's intercept is shifted so the default rate after the onset
    equals what the old concept would give on the same applications: who defaults changes, how
    many does not. Without it the shock roughly doubles the default rate.
    """
    rng = np.random.default_rng(seed)
    counts = rng.poisson(per_week, weeks)
    n = int(counts.sum())
    week = np.repeat(np.arange(weeks), counts)
    new = np.zeros(n, dtype=bool) if onset is None else week >= onset

    # Applicants: a pool in which a third of applications are repeat customers.
    pool = max(1, int(n * 0.7))
    applicant = rng.integers(0, pool, n)

    # When: weekday-heavy days, office-hours-heavy hours, any second.
    day = rng.choice(7, n, p=np.array([1.0, 1.0, 1.0, 1.0, 0.9, 0.5, 0.4]) / 5.8)
    hour_w = np.array([1, 1, 1, 1, 1, 2, 3, 5, 8, 9, 9, 9, 8, 9, 9, 9, 8, 7, 6, 5, 4, 3, 2, 1], dtype=float)
    hour = rng.choice(24, n, p=hour_w / hour_w.sum())
    seconds = rng.integers(0, 3600, n)
    applied = (
        pd.Timestamp(START)
        + pd.to_timedelta(week * 7 + day, unit="D")
        + pd.to_timedelta(hour, unit="h")
        + pd.to_timedelta(seconds, unit="s")
    )

    employment = _pick(rng, n, _EMPLOYMENT_P)
    purpose = _pick(rng, n, _PURPOSE_P)
    region = _pick(rng, n, _REGION_P)
    channel = np.where(new, _pick(rng, n, _CHANNEL_P_NEW), _pick(rng, n, _CHANNEL_P_OLD))
    income_base = np.array([52_000, 60_000, 30_000, 34_000, 14_000])[employment]
    income = np.clip(income_base * rng.lognormal(0.0, 0.45, n), 3_000, 600_000).round(-2)
    amount = np.clip(rng.lognormal(np.log(9_000), 0.7, n) * np.where(purpose == 1, 1.6, 1.0), 500, 60_000).round(-1)
    other_debt = rng.gamma(2.0, 0.08, n)  # monthly service of existing debt, share of income
    dti = np.clip(other_debt + (amount / 36.0) / (income / 12.0), 0.0, 2.0).round(3)
    history = np.clip(rng.gamma(3.0, 35.0, n) * np.where(employment == 4, 0.25, 1.0), 0, 720).round()
    inquiries = np.minimum(rng.poisson(0.7 + 1.6 * (channel == 3) + 0.8 * (employment == 2)), 40)
    mortgage = rng.random(n) < np.where(employment == 4, 0.15, 0.35)

    z_old = (
        -2.9
        + 2.2 * dti
        - 0.0035 * np.minimum(history, 240)
        + 0.10 * inquiries
        - 0.35 * mortgage
        + 0.25 * np.log(amount / 9_000)
        + np.asarray(_EMPLOYMENT_FX)[employment]
        + np.asarray(_PURPOSE_FX)[purpose]
        + np.asarray(_REGION_FX)[region]
    )
    variable_income = (employment == 1) | (employment == 2)
    stacking = (channel == 3) & (inquiries >= 3)
    z_new = (
        z_old
        + 1.9 * mortgage  # variable-rate mortgage payments jump: mortgage holders are now the risky ones
        + 0.6 * variable_income
        + 2.2 * stacking
        - 1.3 * (purpose == 5)  # the guarantee turns the small-business premium into a discount
    )
    if hold_rate and new.any():
        z_new = z_new + _rate_offset(z_new[new], z_old[new])
    z = np.where(new, z_new, z_old)
    default = rng.random(n) < 1.0 / (1.0 + np.exp(-z))

    order = np.argsort(applied.to_numpy(), kind="stable")
    applied = pd.Series(applied.to_numpy()[order]).astype("datetime64[us]")
    idx = np.arange(n)
    traffic = pd.DataFrame(
        {
            "application_id": pd.Series([f"app-{seed}-{i:07d}" for i in idx], dtype="str"),
            "applicant_id": pd.Series([f"cust{a:06d}" for a in applicant[order]], dtype="str"),
            "applied_at": applied,
            "loan_amount": amount[order],
            "annual_income": income[order],
            "debt_to_income": dti[order],
            "credit_history_months": history[order],
            "recent_inquiries": inquiries[order].astype(np.int64),
            "employment_type": pd.Series(np.asarray(_EMPLOYMENT)[employment[order]], dtype="str"),
            "loan_purpose": pd.Series(np.asarray(_PURPOSE)[purpose[order]], dtype="str"),
            "region": pd.Series(np.asarray(_REGION)[region[order]], dtype="str"),
            "channel": pd.Series(np.asarray(_CHANNEL)[channel[order]], dtype="str"),
            "has_mortgage": mortgage[order],
        }
    )
    delay = pd.to_timedelta(rng.uniform(2, 7, n), unit="D")
    outcomes = pd.DataFrame(
        {
            "application_id": traffic["application_id"],
            "applicant_id": traffic["applicant_id"],
            "repayment": pd.Series(np.where(default[order], "defaulted", "repaid"), dtype="str"),
            "observed_time": (applied + pd.Series(delay[order])).astype("datetime64[us]"),
        }
    )
    rates = {
        "before": float(default[~new].mean()) if (~new).any() else None,
        "after": float(default[new].mean()) if new.any() else None,
    }
    kind = "same default rate" if hold_rate else "rate shock"
    return Stream(
        name=f"loans, {kind}" + ("" if onset is None else f" @{onset}"),
        traffic=traffic,
        outcomes=outcomes,
        contract=loan_contract(),
        start=pd.Timestamp(START),
        weeks=weeks,
        onset=onset,
        description=f"loan_stream({weeks}, {per_week}/week, seed={seed}, onset={onset}, hold_rate={hold_rate}); "
        f"sudden concept change, default rate {rates['before']:.3f} before, {rates['after'] or 0:.3f} after",
        meta={"rows": n, "default_rate": rates},
    )
