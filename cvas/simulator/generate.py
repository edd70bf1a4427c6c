"""The simulated Nova's generator: subscriptions, their lifecycles and events, refunds, PPD purchases
and segments drawn from seeded random streams, as arrays (deterministic for the same arguments)."""

from __future__ import annotations

import datetime as dt
import logging

import numpy as np
import pyarrow as pa


from cvas.simulator.cpc_catalogue import (ACT_CHANNELS, AUTO_TEXTS, BOUNDARY_RATE, CAMPAIGN_P, CAMPAIGNS, CANCEL_FIRST,
                                         CATALOGUE, CNR_MODE_P, CNR_MODES, CURRENT_OFFER_DAYS, DAY_S, DCT_CHANNELS,
                                         DUPLICATE_RATE, EPOCH, HISTORY_DAYS, LONG_MEAN, MEDIA, PPD_BASE, PPD_PER_NEW,
                                         PROVIDERS, REFUND_RATE, REFUND_REASONS, SHORT_MEAN, SHORT_SHARE,
                                         TRIAL_CONVERSION, TRIAL_END_CHANNELS, UPGRADE_CHANNEL, WEEKDAY_FACTOR,
                                         CatalogueCpc)

log = logging.getLogger(__name__)

# -- helpers -----------------------------------------------------------------------------

def _one_per_day(rng: np.random.Generator, days: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """One random index among `mask` for every day that has a candidate (sorted)."""
    idx = np.flatnonzero(mask)
    if idx.size == 0:
        return idx
    offset = days[idx] - days[idx].min()
    if offset.max() < 2**15:
        offset = offset.astype(np.int16)    # a stable sort of 16-bit keys is a radix sort
    by_day = np.argsort(offset, kind="stable")
    counts = np.bincount(offset)
    present = np.flatnonzero(counts)
    first = (np.cumsum(counts) - counts)[present]
    pick = first + np.floor(rng.random(present.size) * counts[present]).astype(np.int64)
    return np.sort(idx[by_day[pick]])


def _stable_order(key: np.ndarray) -> np.ndarray:
    """The stable ascending order of non-negative int64 keys (ties keep their positions)."""
    pos_bits = max(1, int(key.size).bit_length())
    if key.size and int(key.max()).bit_length() + pos_bits <= 62:
        # unique keys: the position in the low bits makes any sort stable and fast
        packed = np.sort((key << pos_bits) | np.arange(key.size, dtype=np.int64))
        return packed & ((1 << pos_bits) - 1)
    return np.argsort(key, kind="stable")


def _unique_draw(rng: np.random.Generator, n: int, low: int, high: int) -> np.ndarray:
    """`n` distinct integers in [low, high), drawn uniformly (duplicates are drawn again)."""
    values = rng.integers(low, high, n, dtype=np.int64)
    while True:
        _, first = np.unique(values, return_index=True)
        if first.size == n:
            return values
        again = np.ones(n, dtype=bool)
        again[first] = False
        values[again] = rng.integers(low, high, int(again.sum()), dtype=np.int64)


def _ceil_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return -((-a) // b)


def ts_array(seconds: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
    """Epoch seconds as an Arrow timestamp[s] array (null where not `valid`)."""
    mask = None if valid is None else ~valid
    return pa.array(seconds.astype(np.int64), type=pa.timestamp("s"), mask=mask)


def int_array(values: np.ndarray, valid: np.ndarray | None = None, type_=pa.int64()) -> pa.Array:
    mask = None if valid is None else ~valid
    return pa.array(values, type=type_, mask=mask)


# -- the generator -----------------------------------------------------------------------

class Catalogue:
    """The catalogue as numpy columns indexed by catalogue position."""

    def __init__(self, entries: tuple[CatalogueCpc, ...]) -> None:
        self.entries = entries
        self.cpc = np.array([e.cpc for e in entries], dtype=np.int64)
        self.period = np.array([e.period for e in entries], dtype=np.int64)
        self.cents = np.array([-1 if e.price is None else round(e.price * 100) for e in entries], dtype=np.int64)
        self.free = self.cents == 0
        self.auto_refund = np.array([e.auto_refund for e in entries])
        position = {e.cpc: i for i, e in enumerate(entries)}
        self.upgrade = np.array([position[e.upgrade_to] if isinstance(e.upgrade_to, int) else -1
                                 for e in entries], dtype=np.int64)
        self.p_new = self._weights([e.new for e in entries])
        self.p_old = self._weights([e.old for e in entries])
        self.p_ppd = self._weights([e.ppd for e in entries])
        subscribable = (self.period > 0) & (self.cents >= 0)
        assert not ((self.p_new + self.p_old) > 0)[~subscribable].any(), "weights on non-subscription CPCs"
        assert not (self.p_ppd > 0)[self.period != 0].any(), "PPD weight on a subscription CPC"

    @staticmethod
    def _weights(values: list[float]) -> np.ndarray:
        w = np.array(values, dtype=float)
        return w / w.sum()


def _lifecycles(cat: Catalogue, r_subs: np.random.Generator, r_life: np.random.Generator, w0: int, w1: int,
                new_per_day: int, steady: bool) -> dict:
    """Subscriptions started over [w0 - HISTORY_DAYS, w1) and not ended before the window:
    their CPCs, trial upgrades, paid segments, renewal periods and ends."""
    day_nums = np.arange(w0 - HISTORY_DAYS, w1, dtype=np.int64)
    # steady: no weekday pattern either, so any two days of the window carry the same volume
    weekday = np.ones(7) if steady else WEEKDAY_FACTOR
    per_day = r_subs.poisson(new_per_day * weekday[(day_nums + 3) % 7])
    sday = np.repeat(day_nums, per_day)
    n = sday.size
    stod = r_subs.integers(0, DAY_S, n)
    # steady: one offer throughout, so the base renewing in the window neither shrinks nor
    # changes its mix (the default switches from the legacy offer, a base that decays)
    current = np.ones(sday.size, dtype=bool) if steady else sday >= w0 - CURRENT_OFFER_DAYS
    ncat = len(CATALOGUE)
    cpc1 = np.where(current, r_subs.choice(ncat, n, p=cat.p_new), r_subs.choice(ncat, n, p=cat.p_old))
    free = cat.free[cpc1]
    target = np.where(free, cat.upgrade[cpc1], -1)
    converted = (target >= 0) & (r_life.random(n) < TRIAL_CONVERSION)
    paid_idx = np.where(converted, target, np.where(free, -1, cpc1))
    has_paid = paid_idx >= 0
    # trial end (free CPCs): upgrade day, or the deactivation day when not converted
    u_day = sday + cat.period[cpc1]
    u_tod = r_life.integers(0, DAY_S - 120, n)
    ps_day = np.where(converted, u_day, sday)          # paid segment start
    ps_tod = np.where(converted, u_tod, stod)
    p = np.where(has_paid, cat.period[np.maximum(paid_idx, 0)], 1)
    life = np.where(r_life.random(n) < SHORT_SHARE, r_life.exponential(SHORT_MEAN, n),
                    r_life.exponential(LONG_MEAN, n))
    cnr_first = has_paid & (r_life.random(n) < CANCEL_FIRST)
    life_days = np.maximum(1, np.ceil(life).astype(np.int64))
    ed = np.where(cnr_first, ps_day + np.maximum(1, _ceil_div(life_days, p)) * p, ps_day + life_days)
    ed = np.where(has_paid, ed, u_day)
    etod = r_life.integers(0, DAY_S, n)
    # the CNR falls after the last renewal and before the DCT at the next renewal date
    cnr_day = np.maximum(ps_day, ed - 1 - np.floor(r_life.random(n) * np.maximum(p - 1, 1)).astype(np.int64))
    cnr_tod = r_life.integers(0, DAY_S, n)
    cnr_tod = np.where(cnr_day == ps_day, np.minimum(np.maximum(cnr_tod, ps_tod + 60), DAY_S - 1), cnr_tod)
    mode_idx = r_life.choice(len(CNR_MODES), n, p=CNR_MODE_P)
    chan_act = r_life.choice(ACT_CHANNELS[0], n, p=ACT_CHANNELS[1])
    chan_end = np.where(
        cnr_first, np.array([m[1] for m in CNR_MODES])[mode_idx],
        np.where(has_paid, r_life.choice(DCT_CHANNELS[0], n, p=DCT_CHANNELS[1]),
                 r_life.choice(TRIAL_END_CHANNELS[0], n, p=TRIAL_END_CHANNELS[1])))
    delay = r_life.integers(1, 180, n)

    # keep what the window can see: subscriptions not ended before it
    keep = ed >= w0
    (sday, stod, cpc1, converted, paid_idx, has_paid, u_day, u_tod, ps_day, ps_tod, p, cnr_first, ed, etod,
     cnr_day, cnr_tod, mode_idx, chan_act, chan_end, delay) = (
        a[keep] for a in (sday, stod, cpc1, converted, paid_idx, has_paid, u_day, u_tod, ps_day, ps_tod, p,
                          cnr_first, ed, etod, cnr_day, cnr_tod, mode_idx, chan_act, chan_end, delay))
    n = sday.size
    s_ts = sday * DAY_S + stod
    u_ts = u_day * DAY_S + u_tod
    e_ts = ed * DAY_S + etod
    last_idx = np.where(has_paid, paid_idx, cpc1)

    return {k: v for k, v in locals().items() if k in _LIFE}


_LIFE = frozenset({"sday", "stod", "cpc1", "converted", "paid_idx", "has_paid", "u_day", "u_tod", "ps_day", "ps_tod",
                   "p", "cnr_first", "ed", "etod", "cnr_day", "cnr_tod", "mode_idx", "chan_act", "chan_end", "delay",
                   "n", "s_ts", "u_ts", "e_ts", "last_idx"})


def _ppd_purchases(cat: Catalogue, r_ppd: np.random.Generator, w0: int, w1: int, days: int,
                   new_per_day: int) -> dict:
    """Pay-per-download purchases (one-offs), appended as pseudo-subscriptions."""
    ncat = len(CATALOGUE)
    win_days = np.arange(w0, w1, dtype=np.int64)
    n_ppd_day = np.maximum(2, r_ppd.poisson(PPD_BASE + new_per_day * PPD_PER_NEW, days))
    ppd_day = np.repeat(win_days, n_ppd_day)
    m = ppd_day.size
    ppd_tod = r_ppd.integers(0, DAY_S, m)
    ppd_cpc = r_ppd.choice(ncat, m, p=cat.p_ppd)
    ppd_chan = r_ppd.choice(ACT_CHANNELS[0], m, p=ACT_CHANNELS[1])
    ppd_null = r_ppd.random(m) < 0.3
    ppd_null[np.cumsum(n_ppd_day) - n_ppd_day] = True      # the first purchase of each day
    ppd_delay = r_ppd.integers(1, 30, m)

    return {"m": m, "ppd_day": ppd_day, "ppd_tod": ppd_tod, "ppd_cpc": ppd_cpc, "ppd_chan": ppd_chan,
            "ppd_null": ppd_null, "ppd_delay": ppd_delay}


def _identities(r_ident: np.random.Generator, n: int, m: int) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    """Users, subscription ids and campaign attributes (subscriptions, then PPD purchases)."""
    total = n + m
    n_users = max(16, int(total * 0.85))
    user = r_ident.integers(0, n_users, total)
    tm_kind = (r_ident.random(n_users) >= 0.7).astype(np.int8)           # 0: '834'+16, 1: '34'+16 digits
    tm16 = np.where((tm_kind == 0) & (r_ident.random(n_users) < 0.8),
                    _unique_draw(r_ident, n_users, 0, 10**12) * 10**4,    # many end in 0000
                    _unique_draw(r_ident, n_users, 0, 10**16))
    phone8 = _unique_draw(r_ident, n_users, 0, 10**8)                       # msisdn '346' + 8 digits
    long_id = r_ident.random(total) < 0.4
    sub_id = np.where(long_id, 8_340_000_000_000_000_000, 343_900_000_000_000_000) + np.where(
        long_id, _unique_draw(r_ident, total, 0, 10**15), _unique_draw(r_ident, total, 0, 10**14))
    ident = {
        "sub": np.arange(total, dtype=np.int64),
        "subscription_id": sub_id,
        "user_idx": user,
        "tm_kind": tm_kind[user],
        "tm16": tm16[user],
        "phone8": phone8[user],
        "variant": r_ident.integers(0, 4, total).astype(np.int8),
        "camp": r_ident.choice(len(CAMPAIGNS), total, p=CAMPAIGN_P).astype(np.int8),
        "has_camp": r_ident.random(total) < 0.7,
        "prov": r_ident.integers(0, len(PROVIDERS), total).astype(np.int8),
        "has_prov": r_ident.random(total) < 0.5,
        "med": r_ident.integers(0, len(MEDIA), total).astype(np.int8),
        "has_medium": r_ident.random(total) < 0.5,
        "tefcamp": r_ident.integers(1000, 10000, total),
        "has_tefcamp": r_ident.random(total) < 0.4,
    }

    return ident, tm_kind, tm16, phone8


def _events(cat: Catalogue, life: dict, ppd: dict, r_events: np.random.Generator, w0: int, w1: int) -> dict:
    """The fact events in the window: ACT, upgrades, renewals, DCT and PPD, as columns."""
    (sday, stod, cpc1, converted, paid_idx, has_paid, u_day, ps_day, p, ed, chan_act, chan_end, delay, n, s_ts,
     u_ts, e_ts, last_idx) = (life[k] for k in (
        "sday", "stod", "cpc1", "converted", "paid_idx", "has_paid", "u_day", "ps_day", "p", "ed", "chan_act",
        "chan_end", "delay", "n", "s_ts", "u_ts", "e_ts", "last_idx"))
    m, ppd_day, ppd_tod, ppd_cpc, ppd_chan, ppd_delay = (ppd[k] for k in (
        "m", "ppd_day", "ppd_tod", "ppd_cpc", "ppd_chan", "ppd_delay"))
    blocks: list[dict[str, np.ndarray]] = []

    def add(mask, ttype, cat_idx, chan, tlog, req, nxt=None, cents=None):
        idx = np.flatnonzero(mask)
        k = idx.size

        def take(v, fill):
            if v is None:
                return np.full(k, fill, dtype=np.int64)
            return np.asarray(v)[idx] if np.ndim(v) else np.full(k, v, dtype=np.int64)
        blocks.append({
            "sub": idx, "ttype": np.full(k, ttype, dtype=np.int8), "cat": take(cat_idx, -1),
            "chan": take(chan, -1), "tlog": take(tlog, -1), "req": take(req, -1),
            "nxt": take(nxt, -1), "cents": take(cents, -1),
        })

    in_win = lambda d: (d >= w0) & (d < w1)  # noqa: E731
    req_s = s_ts - delay
    # ACT: a new subscription (paid, or a free trial with rev 0)
    add(in_win(sday), 1, cpc1, chan_act, s_ts, req_s,
        s_ts + cat.period[cpc1] * DAY_S, cat.cents[cpc1])
    # upgrade: ACT on the paid CPC and DCT on the free one, both channel UPGRADE, same day
    up_req = u_ts - delay
    add(converted & in_win(u_day), 1, paid_idx, UPGRADE_CHANNEL, u_ts, up_req,
        u_ts + p * DAY_S, cat.cents[np.maximum(paid_idx, 0)])
    add(converted & in_win(u_day), 3, cpc1, UPGRADE_CHANNEL, u_ts + 1 + (delay % 60), req_s)
    # RENO on the paid segment: every period on the anniversary day, before the end day
    k_lo = np.maximum(1, _ceil_div(w0 - ps_day, p))
    k_hi = np.minimum((ed - 1 - ps_day) // p, (w1 - 1 - ps_day) // p)
    cnt = np.where(has_paid, np.maximum(0, k_hi - k_lo + 1), 0)
    r_sub = np.repeat(np.arange(n), cnt)
    r_k = k_lo[r_sub] + np.arange(r_sub.size) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    r_day = ps_day[r_sub] + r_k * p[r_sub]
    # most renewals run in the night batch, the rest over the day
    r_tod = np.where(r_events.random(r_sub.size) < 0.55, r_events.integers(0, 6 * 3600, r_sub.size),
                     r_events.integers(0, DAY_S, r_sub.size))
    boundary = r_events.random(r_sub.size) < BOUNDARY_RATE
    r_tod = np.where(boundary, np.where(r_events.random(r_sub.size) < 0.5, 0, DAY_S - 1), r_tod)
    midnight = _one_per_day(r_events, r_day, np.ones(r_sub.size, dtype=bool))
    r_tod[midnight] = 0
    not_midnight = np.ones(r_sub.size, dtype=bool)
    not_midnight[midnight] = False
    r_tod[_one_per_day(r_events, r_day, not_midnight)] = DAY_S - 1
    r_tlog = r_day * DAY_S + r_tod
    reno_req = np.where(converted, up_req, req_s)[r_sub]
    blocks.append({
        "sub": r_sub, "ttype": np.full(r_sub.size, 2, dtype=np.int8), "cat": paid_idx[r_sub],
        "chan": np.where(converted, UPGRADE_CHANNEL, chan_act)[r_sub], "tlog": r_tlog, "req": reno_req,
        "nxt": r_tlog + p[r_sub] * DAY_S, "cents": cat.cents[paid_idx[r_sub]],
    })
    # DCT: the end of the subscription (after a CNR, at the next renewal date)
    add(in_win(ed), 3, last_idx, chan_end, e_ts, np.where(converted, up_req, req_s))
    # PPD: one-off purchases
    ppd_tlog = ppd_day * DAY_S + ppd_tod
    blocks.append({
        "sub": n + np.arange(m), "ttype": np.full(m, 4, dtype=np.int8), "cat": ppd_cpc, "chan": ppd_chan,
        "tlog": ppd_tlog, "req": ppd_tlog - ppd_delay, "nxt": np.full(m, -1, dtype=np.int64),
        "cents": cat.cents[ppd_cpc],
    })
    ev = {k: np.concatenate([b[k] for b in blocks]) for k in blocks[0]}
    blocks.clear()
    return ev


def _fact_table(ev: dict, n: int, ppd: dict, cpc1: np.ndarray, r_dup: np.random.Generator, lo_s: int) -> tuple[dict, np.ndarray]:
    """The fact table rows in time order, with a few exact duplicates; and each identity's first CPC."""
    ppd_null, ppd_cpc = ppd["ppd_null"], ppd["ppd_cpc"]
    n_ev = ev["sub"].size
    ppd_rows = ev["sub"] >= n
    null_sub = np.zeros(n_ev, dtype=bool)
    null_sub[ppd_rows] = ppd_null[ev["sub"][ppd_rows] - n]
    # the table is stored in time order (then type, then generation order: deterministic)
    order = _stable_order((ev["tlog"] - lo_s) * 8 + ev["ttype"])
    # exact duplicates: a few rows inserted twice, next to their original
    n_dup = max(1, round(n_ev * DUPLICATE_RATE)) if n_ev else 0
    rows = order[np.sort(np.concatenate([np.arange(n_ev), r_dup.choice(n_ev, n_dup, replace=False)]))]
    cat_a = np.concatenate([cpc1, ppd_cpc])        # per identity row: its first CPC ...
    fact = {
        "sub": ev["sub"][rows].astype(np.int32),
        "slot": (ev["cat"][rows] != cat_a[ev["sub"][rows]]),   # ... or its upgrade CPC (slot 1)
        "cat": ev["cat"][rows],
        "ttype": ev["ttype"][rows],
        "chan": ev["chan"][rows].astype(np.int32),
        "tlog": ev["tlog"][rows],
        "req": ev["req"][rows],
        "nxt": ev["nxt"][rows],
        "cents": ev["cents"][rows],
        "null_sub": null_sub[rows],
    }
    del rows, order
    return fact, cat_a



def _cancellations(cat: Catalogue, life: dict, w0: int, w1: int) -> dict:
    """CNR: cancellations announced before the final DCT."""
    cnr_first, cnr_day, cnr_tod, paid_idx, mode_idx = (life[k] for k in (
        "cnr_first", "cnr_day", "cnr_tod", "paid_idx", "mode_idx"))
    in_win = lambda d: (d >= w0) & (d < w1)  # noqa: E731
    cnr_mask = cnr_first & in_win(cnr_day)
    c_sub = np.flatnonzero(cnr_mask)
    c_ts = cnr_day[c_sub] * DAY_S + cnr_tod[c_sub]
    c_order = np.lexsort((c_sub, c_ts))
    cnr = {"sub": c_sub[c_order], "ts": c_ts[c_order], "cpc": cat.cpc[paid_idx[c_sub[c_order]]],
           "mode": mode_idx[c_sub[c_order]].astype(np.int8)}
    return cnr


def _refunds(cat: Catalogue, ev: dict, r_refund: np.random.Generator) -> dict:
    """Refunds: several rows per refunded charge, the same day."""
    charge = np.flatnonzero(((ev["ttype"] == 1) | (ev["ttype"] == 2)) & (ev["cents"] > 0))
    ch_day = ev["tlog"][charge] // DAY_S
    ch_auto = cat.auto_refund[ev["cat"][charge]]
    chosen = r_refund.random(charge.size) < REFUND_RATE
    # kind per refunded charge: 0 regular, 1 automatic, 2 both (same subscription, same day)
    u = r_refund.random(charge.size)
    kind = np.where(ch_auto, np.where(u < 0.6, 1, np.where(u < 0.95, 0, 2)), 0)
    both = _one_per_day(r_refund, ch_day, ch_auto)
    chosen[both] = True
    kind[both] = 2
    g = np.flatnonzero(chosen)
    g_kind = kind[g]
    no_sbn_group = np.zeros(g.size, dtype=bool)
    no_sbn_group[_one_per_day(r_refund, ch_day[g], g_kind == 0)] = True
    n_reg = np.where(g_kind != 1, 1 + r_refund.poisson(4.5, g.size), 0)
    n_auto = np.where(g_kind != 0, 1 + r_refund.poisson(0.3, g.size), 0)
    rf_g = np.concatenate([np.repeat(np.arange(g.size), n_reg), np.repeat(np.arange(g.size), n_auto)])
    rf_auto = np.concatenate([np.zeros(int(n_reg.sum()), dtype=bool), np.ones(int(n_auto.sum()), dtype=bool)])
    ev_i = charge[g[rf_g]]
    k = rf_g.size
    tod = ev["tlog"][ev_i] % DAY_S
    rf_ts = ev["tlog"][ev_i] + np.floor(r_refund.random(k) * (DAY_S - tod)).astype(np.int64)
    rf_cents = cat.cents[ev["cat"][ev_i]]
    rf_cents = np.where(r_refund.random(k) < 0.05, rf_cents // 2, rf_cents)   # a few partial refunds
    rf_no_sbn = (r_refund.random(k) < 0.02) | (no_sbn_group[rf_g] & ~rf_auto)
    rf_order = np.lexsort((rf_auto, rf_g, rf_ts))
    refund = {
        "sub": ev["sub"][ev_i][rf_order], "cpc": cat.cpc[ev["cat"][ev_i]][rf_order], "ts": rf_ts[rf_order],
        "cents": rf_cents[rf_order], "auto": rf_auto[rf_order], "no_sbn": rf_no_sbn[rf_order],
        "reason": r_refund.integers(0, len(REFUND_REASONS), k)[rf_order].astype(np.int8),
        "auto_text": r_refund.integers(0, len(AUTO_TEXTS), k)[rf_order].astype(np.int8),
        "ticket": r_refund.integers(100_000, 1_000_000, k)[rf_order],
    }
    return refund


def _segments(cat: Catalogue, life: dict, lo_s: int, hi_s: int) -> dict:
    """The truth: subscription segments alive in the window."""
    n, converted, cpc1, paid_idx, s_ts, u_ts, e_ts, chan_act = (life[k] for k in (
        "n", "converted", "cpc1", "paid_idx", "s_ts", "u_ts", "e_ts", "chan_act"))
    # first segment: the paid subscription, or the free trial up to its end
    a_end = np.where(converted, u_ts, e_ts)
    seg_sub = np.concatenate([np.arange(n), np.flatnonzero(converted)])
    seg_cat = np.concatenate([cpc1, paid_idx[converted]])
    seg_start = np.concatenate([s_ts, u_ts[converted]])
    seg_end = np.concatenate([a_end, e_ts[converted]])
    seg_chan = np.concatenate([chan_act, np.full(int(converted.sum()), UPGRADE_CHANNEL)])
    alive = (seg_end > lo_s) & (seg_start < hi_s)
    seg_order = np.lexsort((seg_start[alive], seg_sub[alive]))
    segments = {
        "sub": seg_sub[alive][seg_order], "cpc": cat.cpc[seg_cat[alive]][seg_order],
        "start": seg_start[alive][seg_order], "end": seg_end[alive][seg_order],
        "chan": seg_chan[alive][seg_order], "cents": cat.cents[seg_cat[alive]][seg_order],
    }
    return segments


def _exclusion_list(ident: dict, ev: dict, lo_s: int, tm_kind: np.ndarray, tm16: np.ndarray, phone8: np.ndarray,
                    r_excl: np.random.Generator) -> list[tuple[str, str]]:
    """A handful of users with transactions on the first day."""
    first_day_users = np.unique(ident["user_idx"][ev["sub"][ev["tlog"] < lo_s + DAY_S]])
    pick = np.sort(r_excl.choice(first_day_users, min(8, first_day_users.size), replace=False))
    exclusions = []
    for i, u_i in enumerate(pick):
        prefix = "834" if tm_kind[u_i] == 0 else "34"
        tmuserid = "" if i % 3 == 1 else f"{prefix}{tm16[u_i]:016d}"
        exclusions.append((f"346{phone8[u_i]:08d}", tmuserid))
    order_excl = r_excl.permutation(len(exclusions))
    return [exclusions[i] for i in order_excl]


def generate(start: dt.date, days: int, new_per_day: int, seed: int, steady: bool = False) -> dict:
    """All simulated rows as numpy/Arrow columns (no strings yet: DuckDB formats those)."""
    cat = Catalogue(CATALOGUE)
    (r_subs, r_life, r_ident, r_events, r_refund, r_ppd, r_dup, r_excl) = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(8))
    w0 = (start - EPOCH).days
    w1 = w0 + days
    lo_s, hi_s = w0 * DAY_S, w1 * DAY_S
    life = _lifecycles(cat, r_subs, r_life, w0, w1, new_per_day, steady)
    n = life["n"]
    ppd = _ppd_purchases(cat, r_ppd, w0, w1, days, new_per_day)
    ident, tm_kind, tm16, phone8 = _identities(r_ident, n, ppd["m"])
    ev = _events(cat, life, ppd, r_events, w0, w1)
    fact, cat_a = _fact_table(ev, n, ppd, life["cpc1"], r_dup, lo_s)
    cnr = _cancellations(cat, life, w0, w1)
    refund = _refunds(cat, ev, r_refund)
    segments = _segments(cat, life, lo_s, hi_s)
    exclusions = _exclusion_list(ident, ev, lo_s, tm_kind, tm16, phone8, r_excl)
    converted, paid_idx, cpc1 = life["converted"], life["paid_idx"], life["cpc1"]
    return {
        "cat": cat, "ident": ident, "fact": fact, "cnr": cnr, "refund": refund, "segments": segments,
        "exclusions": exclusions, "lo_s": lo_s, "hi_s": hi_s,
        "cat_a": cat_a, "cat_b": np.concatenate([np.where(converted, paid_idx, cpc1), ppd["ppd_cpc"]]),
    }
