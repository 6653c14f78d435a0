"""Synthetic churn traffic: a believable population, weekly requests and late labels.

The simulator feeds the demo, the tests and the benchmarks. Users have stable traits (country,
plan, device, signup date) and behaviour that varies week to week; about 85% of users send one
request in a given week, on a day and hour that follow a weekday/weekend rhythm. Whether the user
churns comes from a logistic model on the request's features, and the label is observed 7 days
after the request.

Scenarios change the traffic from ``shift_week`` on (weeks are counted from 0):

- ``stable``: nothing changes.
- ``covariate_shift``: the mean of ``sessions_per_week`` moves by ``-shift_size`` (relative); the
  churn model given the features stays the same.
- ``concept_drift``: the feature -> churn relationship moves over 4 weeks to a new one in which
  new users with support tickets churn far more and ``days_since_last_login`` no longer matters.
- ``country_names``: serving sends the English country name ("United States") instead of the
  ISO code ("US") for every country.
- ``long_tail``: from the start, a few rare countries (each well under 0.5% of rows) and a rare
  enterprise plan, with churn rates far from the rest.

Every random component draws from its own child of ``numpy.random.default_rng(seed)``, so runs
with the same seed share every draw a scenario does not touch: rows before ``shift_week`` are
identical across scenarios (except ``long_tail``, which changes the population), which is what
makes scenario effects measurable against ``stable``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from driftline.contract import Contract, DriftThresholds, Feature, Target
from driftline.errors import InputError

SCENARIOS = ("stable", "covariate_shift", "concept_drift", "country_names", "long_tail")

ACTIVITY = 0.85  # mean probability that a user sends a request in a given week
LABEL_DELAY_DAYS = 7  # churn is observed this many days after the request
DRIFT_RAMP_WEEKS = 4  # concept drift reaches full strength after this many weeks

# Country code, share of users, churn log-odds offset. Shares sum to 1.
_COUNTRIES: tuple[tuple[str, float, float], ...] = (
    ("US", 0.26, 0.0),
    ("GB", 0.09, 0.0),
    ("DE", 0.09, -0.15),
    ("FR", 0.07, 0.0),
    ("IN", 0.10, 0.25),
    ("BR", 0.08, 0.30),
    ("CA", 0.05, 0.0),
    ("JP", 0.05, -0.30),
    ("ES", 0.04, 0.0),
    ("IT", 0.04, 0.0),
    ("MX", 0.04, 0.20),
    ("AU", 0.03, 0.0),
    ("NL", 0.03, 0.0),
    ("PL", 0.03, 0.0),
)
# long_tail: rare countries, share of users, churn log-odds offset (markedly off the rest).
_TAIL_COUNTRIES: tuple[tuple[str, float, float], ...] = (
    ("IS", 0.0040, 2.0),
    ("LU", 0.0015, -2.5),
    ("MT", 0.0006, 2.5),
    ("EE", 0.0002, 1.5),
)
_PLANS: tuple[tuple[str, float, float], ...] = (
    ("free", 0.45, 0.35),
    ("basic", 0.30, 0.0),
    ("pro", 0.20, -0.35),
    ("enterprise", 0.05, -1.0),
)
_AUTO_RENEW_P = (0.15, 0.60, 0.75, 0.90)  # by plan, in _PLANS order
_TAIL_ENTERPRISE_KEEP = 0.06  # long_tail keeps this share of enterprise users (0.05 * 0.06 = 0.3%)
_TAIL_ENTERPRISE_EFFECT = 3.0  # extra churn log-odds of the rare enterprise plan under long_tail
_DEVICES: tuple[tuple[str, float, float], ...] = (
    ("ios", 0.34, 0.0),
    ("android", 0.36, 0.10),
    ("web", 0.20, 0.0),
    ("desktop", 0.10, -0.10),
)
_WEEKDAY_WEIGHT = (1.0, 1.0, 1.0, 1.0, 1.0, 0.55, 0.55)  # Monday .. Sunday
_HOUR_WEIGHT = (
    0.2, 0.15, 0.1, 0.1, 0.1, 0.2, 0.5, 0.9, 1.2, 1.3, 1.3, 1.2,
    1.1, 1.2, 1.3, 1.3, 1.2, 1.1, 1.1, 1.2, 1.1, 0.9, 0.6, 0.35,
)  # fmt: skip
_SESSIONS_SHAPE, _SESSIONS_SCALE = 1.6, 5.0  # per-user mean sessions ~ Gamma; mean 8
_SESSIONS_NOISE = 0.35  # weekly log-normal wobble of a user's session rate (mean 1)

# Churn log-odds. "old" holds before the shift; concept_drift moves to "new".
_INTERCEPT_OLD = -0.5
_INTERCEPT_NEW = -1.0
_COEF = {
    "log1p_sessions": -0.55,
    "login_days_capped": 0.055,  # min(days_since_last_login, 45)
    "support_tickets": 0.35,
    "payment_failures": 0.80,
    "auto_renew": -0.60,
    "log1p_tenure_months": -0.20,
    "query_length_over_100": -0.25,
}
_NEW_LOGIN_WEIGHT = 0.0  # days_since_last_login stops mattering after concept drift
_NEW_EARLY_CHURN = 2.5  # extra log-odds for a brand-new user (decays with tenure)
_NEW_EARLY_TICKETS = 3.5  # plus this when a new user has at least one support ticket
_NEW_EARLY_TENURE_DAYS = 180.0  # "new" decays as exp(-tenure_days / this)


def churn_contract() -> Contract:
    """The feature contract of the simulated churn traffic (name "churn")."""

    def num(low: float, high: float, text: str, **kw: Any) -> Feature:
        return Feature(type="numeric", range=(low, high), description=text, **kw)

    return Contract(
        name="churn",
        entity_id="user_id",
        request_id="request_id",
        timestamp="event_time",
        target=Target(name="churned", positive=1),
        segment="country",
        features={
            "country": Feature(
                type="categorical",
                vocabulary=[c for c, _, _ in _COUNTRIES],
                closed=False,
                key=True,
                description="ISO 3166 alpha-2 code of the user's country.",
            ),
            "plan": Feature(
                type="categorical",
                vocabulary=[p for p, _, _ in _PLANS],
                closed=True,
                description="Subscription plan.",
            ),
            "device": Feature(
                type="categorical",
                vocabulary=[d for d, _, _ in _DEVICES],
                closed=False,
                description="Device the request came from.",
            ),
            "tenure_days": num(0, 3650, "Days since signup."),
            "sessions_per_week": num(0, 100, "Sessions in the 7 days before the request.", key=True),
            "days_since_last_login": num(0, 365, "Days since the previous login."),
            "support_tickets": num(0, 50, "Support tickets opened in the last 7 days."),
            "payment_failures": num(0, 20, "Failed payments in the last 7 days."),
            "query_length_mean": num(
                0, 500, "Mean query length in characters.", drift=DriftThresholds(warn=0.15, alert=0.25)
            ),
            "auto_renew": Feature(type="boolean", description="Subscription renews automatically."),
        },
    )


def parse_scenarios(text: str | Sequence[str]) -> tuple[str, ...]:
    """Scenario names from "a,b" or a list of such strings, deduplicated, in SCENARIOS order.

    "stable" is dropped when another scenario is named (it means "no change").
    """
    return parse_scenario_spec(text)[0]


def parse_scenario_spec(text: str | Sequence[str]) -> tuple[tuple[str, ...], dict[str, int]]:
    """Like :func:`parse_scenarios`, plus per-scenario start weeks written ``name@week``.

    ``"concept_drift@8,country_names@13"`` starts concept drift in week 8 and the country
    names in week 13; a scenario without ``@week`` starts at ``shift_week``.
    """
    parts = [text] if isinstance(text, str) else list(text)
    raw = [n.strip().lower() for p in parts for n in str(p).split(",") if n.strip()]
    weeks: dict[str, int] = {}
    names = []
    for item in raw:
        name, _, week = item.partition("@")
        name = name.strip()
        if week:
            if not week.strip().isdigit():
                raise InputError(f"scenario {item!r}: the week after '@' must be a whole number")
            weeks[name] = int(week)
        names.append(name)
    if not names:
        raise InputError(f"no scenario given; valid scenarios: {', '.join(SCENARIOS)}")
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise InputError(f"unknown scenario {unknown[0]!r}; valid scenarios: {', '.join(SCENARIOS)}")
    chosen = tuple(s for s in SCENARIOS if s in names)
    if len(chosen) > 1:
        chosen = tuple(s for s in chosen if s != "stable")
    return chosen, {n: w for n, w in weeks.items() if n in chosen}


@dataclass
class Simulation:
    """Simulated requests, their delayed labels, the contract and how they were made."""

    traffic: pd.DataFrame
    outcomes: pd.DataFrame
    contract: Contract
    meta: dict[str, Any] = field(default_factory=dict)


def _pick(u: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """Category index for each uniform draw in ``u``, with probabilities ``weights``."""
    cum = np.cumsum(np.asarray(weights, dtype=float))
    cum /= cum[-1]
    return np.minimum(np.searchsorted(cum, u, side="right"), len(cum) - 1)


def _start_date(start: str | date) -> date:
    if isinstance(start, datetime):
        return start.date()
    if isinstance(start, date):
        return start
    try:
        return date.fromisoformat(str(start))
    except ValueError:
        raise InputError(f"start: expected a date like 2026-01-05, got {start!r}") from None


def _check(weeks: int, users: int, seed: int, shift_week: int, shift_size: float) -> None:
    if weeks < 1:
        raise InputError(f"weeks must be at least 1, got {weeks}")
    if users < 1:
        raise InputError(f"users must be at least 1, got {users}")
    if seed < 0:
        raise InputError(f"seed must be 0 or more, got {seed}")
    if not 0 <= shift_week < weeks:
        raise InputError(f"shift_week must be between 0 and {weeks - 1} (weeks count from 0), got {shift_week}")
    if not -4.0 <= shift_size < 1.0:
        raise InputError(f"shift_size must be in [-4, 1) (relative change of the mean), got {shift_size}")


def _users(rngs: dict[str, np.random.Generator], n: int, long_tail: bool) -> dict[str, np.ndarray]:
    """Per-user traits: country, plan, device, tenure at start, behaviour rates."""
    r = rngs["users"]
    # Draw every uniform in a fixed order so scenarios share them.
    u_country, u_tail, u_tail_country, u_plan, u_keep_ent, u_device, u_renew, u_new = r.random((8, n))
    country = _pick(u_country, [s for _, s, _ in _COUNTRIES])
    plan = _pick(u_plan, [s for _, s, _ in _PLANS])
    if long_tail:
        tail_shares = np.array([s for _, s, _ in _TAIL_COUNTRIES])
        is_tail = u_tail < tail_shares.sum()
        country = np.where(is_tail, len(_COUNTRIES) + _pick(u_tail_country, tail_shares), country)
        enterprise = len(_PLANS) - 1
        plan = np.where((plan == enterprise) & (u_keep_ent >= _TAIL_ENTERPRISE_KEEP), enterprise - 1, plan)
    device = _pick(u_device, [s for _, s, _ in _DEVICES])
    auto_renew = u_renew < np.asarray(_AUTO_RENEW_P)[plan]
    # Tenure at the start: 30% joined in the last 180 days, the rest earlier (median ~1.8 years).
    recent = r.uniform(0, 180, n)
    older = 180 + r.lognormal(np.log(500), 0.7, n)
    tenure0 = np.where(u_new < 0.30, recent, older).astype(np.int64)
    return {
        "country": country,
        "plan": plan,
        "device": device,
        "auto_renew": auto_renew,
        "tenure0": tenure0,
        "active_p": r.beta(10 * ACTIVITY, 10 * (1 - ACTIVITY), n),  # mean ACTIVITY
        "sessions_rate": r.gamma(_SESSIONS_SHAPE, _SESSIONS_SCALE, n),
        "dormancy": r.beta(2.0, 5.0, n),
        "ticket_rate": r.gamma(0.6, 0.5, n),
        "failure_rate": np.where(plan == 0, 0.0, r.gamma(0.4, 0.15, n)),  # free plan never pays
        "query_base": r.lognormal(np.log(35.0), 0.45, n) * np.where(device == 3, 1.3, 1.0),
    }


def _event_times(r: np.random.Generator, week: np.ndarray, start: date) -> np.ndarray:
    """Microseconds since the epoch: a day in the request's week, weekday-weighted, and an hour."""
    n = len(week)
    u_day, u_hour = r.random((2, n))
    first = start.weekday()
    day_w = [_WEEKDAY_WEIGHT[(first + d) % 7] for d in range(7)]
    day = _pick(u_day, day_w)
    hour = _pick(u_hour, _HOUR_WEIGHT)
    within = r.integers(0, 3_600_000_000, n)
    start_us = (np.datetime64(start, "D") - np.datetime64(0, "D")).astype(np.int64) * 86_400_000_000
    return start_us + (week * 7 + day) * 86_400_000_000 + hour * 3_600_000_000 + within


def _logit(x: dict[str, np.ndarray], new: bool) -> np.ndarray:
    """Churn log-odds from the row's features (without country/plan/device offsets)."""
    c = _COEF
    login_w = _NEW_LOGIN_WEIGHT if new else c["login_days_capped"]
    z = (
        (_INTERCEPT_NEW if new else _INTERCEPT_OLD)
        + c["log1p_sessions"] * np.log1p(x["sessions_per_week"])
        + login_w * np.minimum(x["days_since_last_login"], 45)
        + c["support_tickets"] * x["support_tickets"]
        + c["payment_failures"] * x["payment_failures"]
        + c["auto_renew"] * x["auto_renew"]
        + c["log1p_tenure_months"] * np.log1p(x["tenure_days"] / 30.0)
        + c["query_length_over_100"] * (x["query_length_mean"] / 100.0)
    )
    if new:
        early = np.exp(-x["tenure_days"] / _NEW_EARLY_TENURE_DAYS)
        z = z + early * (_NEW_EARLY_CHURN + _NEW_EARLY_TICKETS * (x["support_tickets"] >= 1))
    return z


def _id_strings(prefix: str, numbers: np.ndarray, width: int) -> pd.Series:
    """Strings like prefix + zero-padded number, built in Arrow (fast for millions)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    digits = pc.utf8_lpad(pa.array(numbers).cast(pa.string()), width, "0")
    return pd.Series(pc.binary_join_element_wise(prefix, digits, ""), dtype="str")


def _labels(codes: np.ndarray, vocab: Sequence[str]) -> pd.Series:
    return pd.Series(pd.Categorical.from_codes(codes, list(vocab))).astype("str")


def simulate(
    weeks: int,
    users: int,
    scenarios: str | Sequence[str] = ("stable",),
    seed: int = 0,
    start: str | date = "2026-01-05",
    shift_week: int | None = None,
    shift_size: float = 0.3,
) -> Simulation:
    """Simulate ``weeks`` of churn traffic for ``users`` users, starting on ``start``.

    ``shift_week`` (0-based, default ``weeks // 2``) is the first week a scenario affects,
    unless the scenario names its own week (``"concept_drift@8"``, see :func:`parse_scenario_spec`);
    ``shift_size`` is covariate_shift's relative drop of the sessions_per_week mean (0.3 = -30%).
    Same arguments give identical frames (and identical files from :func:`write_simulation`).
    """
    chosen, starts = parse_scenario_spec(scenarios)
    weeks, users, seed, shift_size = int(weeks), int(users), int(seed), float(shift_size)
    start_d = _start_date(start)
    k = weeks // 2 if shift_week is None else int(shift_week)
    _check(weeks, users, seed, k, shift_size)
    starts = {name: starts.get(name, k) for name in chosen}
    for w in starts.values():
        _check(weeks, users, seed, w, shift_size)
    root = np.random.default_rng(seed)
    names = ("users", "activity", "time", "sessions", "shift", "login", "tickets", "failures", "query", "label")
    rngs = dict(zip(names, root.spawn(len(names)), strict=True))
    long_tail = "long_tail" in chosen

    usr = _users(rngs, users, long_tail)
    # One request per active user-week; rows laid out week by week.
    active = rngs["activity"].random((weeks, users)) < usr["active_p"]
    flat = np.flatnonzero(active.ravel())
    week, uid = flat // users, flat % users
    n = len(flat)
    ts = _event_times(rngs["time"], week, start_d)
    start_us = (np.datetime64(start_d, "D") - np.datetime64(0, "D")).astype(np.int64) * 86_400_000_000
    days_in = (ts - start_us) // 86_400_000_000
    r = rngs["sessions"]
    wobble = r.lognormal(-0.5 * _SESSIONS_NOISE**2, _SESSIONS_NOISE, n)
    sessions0 = r.poisson(usr["sessions_rate"][uid] * wobble)
    sessions = sessions0
    if "covariate_shift" in chosen:
        # Thinning (or adding) a Poisson count scales its mean exactly by the factor.
        factor = 1.0 - shift_size
        rs = rngs["shift"]
        if factor <= 1.0:
            moved = rs.binomial(sessions0, factor)
        else:
            moved = sessions0 + rs.poisson(usr["sessions_rate"][uid] * wobble * (factor - 1.0))
        sessions = np.where(week >= starts["covariate_shift"], moved, sessions0)
    sessions = np.minimum(sessions, 100)

    # Login recency follows the unshifted activity, so covariate_shift moves one feature only.
    r = rngs["login"]
    u_login, e_login = r.random(n), r.exponential(1.0, n)
    recent_login = np.floor(u_login * 7.0 / np.maximum(sessions0, 1) * 1.5)
    lapsed = 7 + np.floor(e_login * (10.0 + 60.0 * usr["dormancy"][uid]))
    login = np.where(sessions0 > 0, np.minimum(recent_login, 6), lapsed)
    login = np.minimum(login, 365).astype(np.int64)

    tickets = np.minimum(rngs["tickets"].poisson(usr["ticket_rate"][uid]), 50)
    failures = np.minimum(rngs["failures"].poisson(usr["failure_rate"][uid]), 20)
    query = usr["query_base"][uid] * rngs["query"].lognormal(0.0, 0.12, n)
    query = np.clip(np.round(query, 1), 0.0, 500.0)
    tenure = np.minimum(usr["tenure0"][uid] + days_in, 3650)

    x = {
        "sessions_per_week": sessions,
        "days_since_last_login": login,
        "support_tickets": tickets,
        "payment_failures": failures,
        "auto_renew": usr["auto_renew"][uid],
        "tenure_days": tenure,
        "query_length_mean": query,
    }
    country_fx = np.array([e for _, _, e in _COUNTRIES + _TAIL_COUNTRIES])
    plan_fx = np.array([e for _, _, e in _PLANS])
    if long_tail:
        plan_fx[-1] += _TAIL_ENTERPRISE_EFFECT
    device_fx = np.array([e for _, _, e in _DEVICES])
    offsets = country_fx[usr["country"][uid]] + plan_fx[usr["plan"][uid]] + device_fx[usr["device"][uid]]
    z = _logit(x, new=False) + offsets
    if "concept_drift" in chosen:
        alpha = np.clip((week - starts["concept_drift"] + 1) / DRIFT_RAMP_WEEKS, 0.0, 1.0)
        z = (1.0 - alpha) * z + alpha * (_logit(x, new=True) + offsets)
    churned = (rngs["label"].random(n) < 1.0 / (1.0 + np.exp(-z))).astype(np.int64)

    order = np.argsort(ts, kind="stable")
    width = max(9, len(str(max(n - 1, 0))))
    request_id = _id_strings(f"r{seed}-", np.arange(n), width)
    user_id = _id_strings("u", uid[order], max(6, len(str(users - 1))))
    event_time = pd.Series(ts[order].astype("datetime64[us]"))

    all_codes = [c for c, _, _ in _COUNTRIES + _TAIL_COUNTRIES]
    country_vocab = list(all_codes)
    country_codes = usr["country"][uid][order]
    name_map: dict[str, str] = {}
    if "country_names" in chosen:
        import pycountry

        name_map = {c: pycountry.countries.get(alpha_2=c).name for c in all_codes}
        country_vocab += [name_map[c] for c in all_codes]
        renamed = week >= starts["country_names"]
        country_codes = country_codes + np.where(renamed[order], len(all_codes), 0)

    contract = churn_contract()
    traffic = pd.DataFrame(
        {
            "request_id": request_id,
            "user_id": user_id,
            "event_time": event_time,
            "country": _labels(country_codes, country_vocab),
            "plan": _labels(usr["plan"][uid][order], [p for p, _, _ in _PLANS]),
            "device": _labels(usr["device"][uid][order], [d for d, _, _ in _DEVICES]),
            **{name: pd.Series(x[name][order]) for name in contract.numeric},
            "auto_renew": pd.Series(x["auto_renew"][order].astype(bool)),
        }
    )
    outcomes = pd.DataFrame(
        {
            "request_id": request_id,
            "user_id": user_id,
            "churned": pd.Series(churned[order]),
            "observed_time": event_time + pd.Timedelta(days=LABEL_DELAY_DAYS),
        }
    )
    meta = _meta(chosen, seed, weeks, users, start_d, k, shift_size, n, churned, name_map, long_tail)
    meta["scenario_weeks"] = starts
    for name, w in starts.items():
        if isinstance(meta["parameters"].get(name), dict) and "from_week" in meta["parameters"][name]:
            meta["parameters"][name]["from_week"] = w
    return Simulation(traffic=traffic, outcomes=outcomes, contract=contract, meta=meta)


def _meta(
    chosen: tuple[str, ...],
    seed: int,
    weeks: int,
    users: int,
    start: date,
    k: int,
    shift_size: float,
    rows: int,
    churned: np.ndarray,
    name_map: dict[str, str],
    long_tail: bool,
) -> dict[str, Any]:
    """What was simulated and with which parameters (JSON-ready)."""
    mean0 = _SESSIONS_SHAPE * _SESSIONS_SCALE
    params: dict[str, Any] = {
        "activity_probability": ACTIVITY,
        "label_delay_days": LABEL_DELAY_DAYS,
        "countries": {c: s for c, s, _ in _COUNTRIES},
        "plans": {p: s for p, s, _ in _PLANS},
        "devices": {d: s for d, s, _ in _DEVICES},
        "weekday_weight": list(_WEEKDAY_WEIGHT),
        "churn_intercept": _INTERCEPT_OLD,
        "churn_coefficients": dict(_COEF),
        "sessions_per_week_expected_mean": mean0,
    }
    if "covariate_shift" in chosen:
        params["covariate_shift"] = {
            "feature": "sessions_per_week",
            "from_week": k,
            "relative_change": -shift_size,
            "expected_mean_before": mean0,
            "expected_mean_after": mean0 * (1.0 - shift_size),
            "expected_mean_change": -shift_size * mean0,
        }
    if "concept_drift" in chosen:
        params["concept_drift"] = {
            "from_week": k,
            "ramp_weeks": DRIFT_RAMP_WEEKS,
            "weight_of_new_relationship": "min(1, (week - from_week + 1) / ramp_weeks) from from_week on",
            "new_intercept": _INTERCEPT_NEW,
            "new_days_since_last_login_coefficient": _NEW_LOGIN_WEIGHT,
            "new_early_churn": (
                f"exp(-tenure_days/{_NEW_EARLY_TENURE_DAYS:g})"
                f" * ({_NEW_EARLY_CHURN} + {_NEW_EARLY_TICKETS} * [support_tickets>=1])"
            ),
        }
    if name_map:
        params["country_names"] = {"from_week": k, "names": name_map}
    if long_tail:
        params["long_tail"] = {
            "countries": {c: {"share": s, "churn_log_odds_offset": e} for c, s, e in _TAIL_COUNTRIES},
            "enterprise_share": _PLANS[-1][1] * _TAIL_ENTERPRISE_KEEP,
            "enterprise_churn_log_odds_offset": _PLANS[-1][2] + _TAIL_ENTERPRISE_EFFECT,
        }
    return {
        "scenarios": list(chosen),
        "seed": seed,
        "weeks": weeks,
        "users": users,
        "start": start.isoformat(),
        "shift_week": k,
        "shift_size": shift_size,
        "rows": rows,
        "churn_rate": float(churned.mean()) if rows else 0.0,
        "parameters": params,
    }


def write_simulation(sim: Simulation, out_dir: str | Path) -> dict[str, Path]:
    """Write traffic.parquet, outcomes.parquet, contract.yaml and simulation.json under ``out_dir``.

    Returns the paths keyed "traffic", "outcomes", "contract", "meta".
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"{out}: cannot create output folder ({e.strerror or e})") from None
    paths = {
        "traffic": out / "traffic.parquet",
        "outcomes": out / "outcomes.parquet",
        "contract": out / "contract.yaml",
        "meta": out / "simulation.json",
    }
    sim.traffic.to_parquet(paths["traffic"], index=False)
    sim.outcomes.to_parquet(paths["outcomes"], index=False)
    sim.contract.save(paths["contract"])
    paths["meta"].write_text(json.dumps(sim.meta, indent=2, sort_keys=True) + "\n")
    return paths
