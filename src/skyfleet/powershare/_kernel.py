"""The island simulator's compiled kernel: a quasi-static AC bus, one step at a time, every
scenario on its own core-slice (``prange``).

Each step, for each scenario:

1. every device's start-up state machine runs on what it sensed last step (dead bus: wait, then
   form; live bus inside the normal window: synchronise, then join with droop; tripped: wait the
   reconnect delay);
2. every online device's firmware (:mod:`._controller`) gives its droop curve, clipped to its
   limits (continuous or peak power, state-of-charge tapers, the vehicle never charges); solar
   gives its frequency-watt curve;
3. the bus frequency is solved exactly: the sum of the piecewise-linear droop curves is monotone,
   so the root lies between two sorted breakpoints and is found by interpolation; an island
   that cannot carry its load sits at the lowest breakpoint and its voltage sags in proportion;
4. voltage from reactive droop ``V = 1 - n Q / sum(S)`` and the inverters' current limit;
5. protection (IEEE 1547 trip elements, :mod:`._protection`), energies, states of charge, roles
   and the invariant counters.

Arrays are laid out ``(scenario, device, field)`` with the field indices below; the Python side
(:mod:`._island`) builds them and reads the results. Powers in W, energies in Wh, time in s.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from skyfleet.powershare._bus import solve_bus
from skyfleet.powershare._controller import (
    carrier_role,
    dead_bus_delay_s,
    home_adaptive,
    home_basic,
    vehicle_adaptive,
    vehicle_basic,
)
from skyfleet.powershare._jit import njit_parallel, prange
from skyfleet.powershare._plan import PLAN_INDEX
from skyfleet.powershare._protection import protect

# device parameters (S, D, NP)
K_KIND, K_FW, K_CAP_WH, K_RESERVE, K_CONT_W, K_PEAK_W, K_PEAK_S, K_CHARGE_W, K_ETA, K_SLOT = range(
    10
)
NP = 10
KIND_NONE, KIND_VEHICLE, KIND_HOME = 0, 1, 2
FW_BASIC, FW_ADAPTIVE = 0, 1
# device float state (S, D, NX)
X_E_WH, X_WAIT, X_BUDGET, X_BELOW, X_ABOVE, X_P = range(6)
NX = 6
# device int state (S, D, NI)
I_MODE, I_FLAG, I_ROLE = range(3)
NI = 3
MODE_OFF, MODE_WAIT, MODE_SYNC, MODE_ON, MODE_TRIP = range(5)
ROLES = ("off", "waiting", "syncing", "forming", "following", "tripped")
ROLE_OFF, ROLE_WAITING, ROLE_SYNCING, ROLE_FORMING, ROLE_FOLLOWING, ROLE_TRIPPED = range(6)
# house parameters (S, NQ)
Q_FW_START, Q_FW_FULL, Q_ENTER_S, Q_OPEN_S = range(4)  # solar, and the transfer switch
NQ = 4
# scenario state (S, NB)
B_F, B_V, B_LIVE, B_SOLAR_MODE, B_SOLAR_WAIT, B_INRUSH_END, B_INRUSH_P, B_INRUSH_Q, B_NEXT_EV = (
    range(9)
)
NB = 9
# device accumulators (S, D, NA)
(
    A_OUT_WH,
    A_IN_WH,
    A_LOSS_WH,
    A_MAX_RATIO,
    A_MAX_ABOVE_S,
    A_ABOVE_RUN,
    A_MIN_SOC,
    A_MAX_SOC,
    A_ROLE_CHANGES,
    A_TRIPS,
    A_MAX_OVER_W,
) = range(11)
NA = 11
# scenario accumulators (S, NS)
(
    S_DEMAND_WH,
    S_SERVED_WH,
    S_SOLAR_WH,
    S_LIVE_S,
    S_DARK_S,
    S_DARK_ENERGY_S,
    S_F_MIN,
    S_F_MAX,
    S_V_MIN,
    S_V_MAX,
    S_MAX_RESID_W,
    S_COLLISIONS,
    S_UNSERVED_WH,
    S_FIRST_LIVE_S,
    S_EARLY_WH,
    S_SOLAR_TRIPS,
) = range(16)
NS = 16
# record columns (S, NREC, NR_BASE + NR_DEV D): then per device p_w, q_var, soc_pct, role
R_T, R_F_MIN, R_F_MAX, R_V_MIN, R_V_MAX, R_LOAD_W, R_SERVED_W, R_SOLAR_W = range(8)
NR_BASE = 8
NR_DEV = 4
# inrush events (S, NEV, 4)
E_T, E_DUR, E_P, E_Q = range(4)

_TAPER = PLAN_INDEX["taper_pct"]
_RECOVER = PLAN_INDEX["peak_recover_ratio"]
_VDROOP = PLAN_INDEX["voltage_droop_pu"]
_RECONNECT = PLAN_INDEX["reconnect_s"]
_SYNC = PLAN_INDEX["sync_s"]
_WIN_F_LO = PLAN_INDEX["window_low_hz"]
_WIN_F_HI = PLAN_INDEX["window_high_hz"]
_WIN_V_LO = PLAN_INDEX["window_low_pu"]
_WIN_V_HI = PLAN_INDEX["window_high_pu"]
_JOIN_V_LO = PLAN_INDEX["join_low_pu"]
_DB_MAX = PLAN_INDEX["dead_bus_max_s"]
_SLOT = PLAN_INDEX["slot_s"]
_RECHARGE = PLAN_INDEX["recharge_hz"]
_ROLE_GRACE_S = 60.0  # start-up sequencing is not counted as role changes


@njit_parallel
def run(
    k0: int,
    nsteps: int,
    dt: float,
    plan: Any,
    dev: Any,
    trips: Any,
    solar: Any,
    load_p: Any,
    load_q: Any,
    solar_w: Any,
    events: Any,
    n_events: Any,
    x: Any,
    ii: Any,
    timers: Any,
    bus: Any,
    acc: Any,
    sacc: Any,
    rec: Any,
    rec_every: int,
    k_total: int,
) -> None:
    """Advance every scenario from step ``k0`` by ``nsteps`` steps of ``dt`` seconds, in place."""
    n, d = dev.shape[0], dev.shape[1]
    nsec = load_p.shape[1]
    dt_h = dt / 3600.0
    for s in prange(n):
        # the longest a healthy house may stay dark at the start: the switch opening, the longest
        # dead-bus delay rounded up to a frame, the last slot, and a second to spare
        grace = solar[s, Q_OPEN_S] + plan[_DB_MAX] + 10.0 * plan[_SLOT] + 1.0
        ne_max = 2 * d + 1
        ef = np.empty(ne_max)
        em = np.empty(ne_max)
        elo = np.empty(ne_max)
        ehi = np.empty(ne_max)
        owner = np.empty(ne_max, dtype=np.int64)
        bp = np.empty(2 * ne_max)
        p = np.zeros(d)
        hi_dev = np.zeros(d)
        rating_dev = np.zeros(d)
        fdis = np.zeros(d)
        racc = np.zeros(NR_BASE + NR_DEV * d)
        for k in range(k0, k0 + nsteps):
            t = k * dt
            sec = min(int(t), nsec - 1)
            # motor starts: extra power and reactive power for their duration
            while bus[s, B_NEXT_EV] < n_events[s] and events[s, int(bus[s, B_NEXT_EV]), E_T] <= t:
                e = int(bus[s, B_NEXT_EV])
                if t < bus[s, B_INRUSH_END]:
                    bus[s, B_INRUSH_P] += events[s, e, E_P]
                    bus[s, B_INRUSH_Q] += events[s, e, E_Q]
                else:
                    bus[s, B_INRUSH_P] = events[s, e, E_P]
                    bus[s, B_INRUSH_Q] = events[s, e, E_Q]
                bus[s, B_INRUSH_END] = max(
                    bus[s, B_INRUSH_END], events[s, e, E_T] + events[s, e, E_DUR]
                )
                bus[s, B_NEXT_EV] += 1.0
            if t >= bus[s, B_INRUSH_END]:
                bus[s, B_INRUSH_P] = 0.0
                bus[s, B_INRUSH_Q] = 0.0
            load = load_p[s, sec] + bus[s, B_INRUSH_P]
            qload = load_q[s, sec] + bus[s, B_INRUSH_Q]
            f_prev = bus[s, B_F]
            v_prev = bus[s, B_V]
            live_prev = bus[s, B_LIVE] > 0.5
            f_ok = live_prev and plan[_WIN_F_LO] <= f_prev <= plan[_WIN_F_HI]
            can_join = f_ok and plan[_JOIN_V_LO] <= v_prev <= plan[_WIN_V_HI]
            in_window = f_ok and plan[_WIN_V_LO] <= v_prev <= plan[_WIN_V_HI]
            # 1. start-up state machines
            new_formers = 0
            for j in range(d):
                if dev[s, j, K_KIND] == KIND_NONE:
                    continue
                soc = 100.0 * x[s, j, X_E_WH] / dev[s, j, K_CAP_WH]
                mode = ii[s, j, I_MODE]
                if mode == MODE_OFF:
                    mode = MODE_WAIT
                    x[s, j, X_WAIT] = 0.0
                if mode == MODE_WAIT:
                    if live_prev:
                        mode = MODE_SYNC
                        x[s, j, X_WAIT] = 0.0
                    elif t >= solar[s, Q_OPEN_S]:  # never energise the utility's line
                        # the dead-bus delay runs from the moment the switch has opened
                        x[s, j, X_WAIT] += dt
                        delay = dead_bus_delay_s(soc, dev[s, j, K_RESERVE], dev[s, j, K_SLOT], plan)
                        has_energy = soc > dev[s, j, K_RESERVE] + plan[_TAPER]
                        if has_energy and x[s, j, X_WAIT] >= delay:
                            mode = MODE_ON
                            new_formers += 1
                            if dev[s, j, K_KIND] == KIND_VEHICLE:
                                ii[s, j, I_FLAG] = 1  # it formed the bus: it carries the house
                elif mode == MODE_SYNC:
                    if dev[s, j, K_KIND] == KIND_VEHICLE:
                        ii[s, j, I_FLAG] = 0
                    if not live_prev:
                        mode = MODE_WAIT
                        x[s, j, X_WAIT] = 0.0
                    elif can_join and (
                        soc > dev[s, j, K_RESERVE] + plan[_TAPER] or f_prev >= plan[_RECHARGE]
                    ):  # at its reserve, a device joins only to store a surplus
                        x[s, j, X_WAIT] += dt
                        if x[s, j, X_WAIT] >= plan[_SYNC]:
                            mode = MODE_ON
                    else:
                        x[s, j, X_WAIT] = 0.0
                elif mode == MODE_TRIP:
                    x[s, j, X_WAIT] += dt
                    if x[s, j, X_WAIT] >= plan[_RECONNECT]:
                        mode = MODE_SYNC if live_prev else MODE_WAIT
                        x[s, j, X_WAIT] = 0.0
                ii[s, j, I_MODE] = mode
            if new_formers > 1:
                sacc[s, S_COLLISIONS] += 1.0
            # solar: grid-following, enters service after the bus has been normal for a while
            smode = bus[s, B_SOLAR_MODE]
            if smode == MODE_ON and not live_prev:
                smode = MODE_OFF
                bus[s, B_SOLAR_WAIT] = 0.0
            elif smode == MODE_OFF:
                if in_window:
                    bus[s, B_SOLAR_WAIT] += dt
                    if bus[s, B_SOLAR_WAIT] >= solar[s, Q_ENTER_S]:
                        smode = MODE_ON
                else:
                    bus[s, B_SOLAR_WAIT] = 0.0
            elif smode == MODE_TRIP:
                bus[s, B_SOLAR_WAIT] += dt
                if bus[s, B_SOLAR_WAIT] >= plan[_RECONNECT]:
                    smode = MODE_OFF
                    bus[s, B_SOLAR_WAIT] = 0.0
            bus[s, B_SOLAR_MODE] = smode
            # 2. firmware: droop curves of the online devices
            ne = 0
            s_rating = 0.0
            for j in range(d):
                p[j] = 0.0
                hi_dev[j] = 0.0
                rating_dev[j] = 0.0
                if ii[s, j, I_MODE] != MODE_ON:
                    continue
                soc = 100.0 * x[s, j, X_E_WH] / dev[s, j, K_CAP_WH]
                reserve = dev[s, j, K_RESERVE]
                taper_dis = min(1.0, max(0.0, (soc - reserve) / plan[_TAPER]))
                taper_ch = min(1.0, max(0.0, (100.0 - soc) / plan[_TAPER]))
                use_peak = dev[s, j, K_PEAK_S] > 0.0 and x[s, j, X_BUDGET] > 0.0
                rating = dev[s, j, K_PEAK_W] if use_peak else dev[s, j, K_CONT_W]
                s_rating += rating
                rating_dev[j] = rating
                hi = rating * taper_dis
                lo = -dev[s, j, K_CHARGE_W] * taper_ch
                flag = ii[s, j, I_FLAG] != 0
                if dev[s, j, K_KIND] == KIND_VEHICLE:
                    if dev[s, j, K_FW] == FW_ADAPTIVE:
                        f_dis, m = vehicle_adaptive(soc, reserve, dev[s, j, K_CONT_W], plan)
                    else:
                        f_dis, m = vehicle_basic(dev[s, j, K_CONT_W], plan)
                    f_ch = f_dis
                    lo = 0.0
                elif dev[s, j, K_FW] == FW_ADAPTIVE:
                    f_dis, f_ch, m, flag = home_adaptive(soc, dev[s, j, K_PEAK_W], plan, flag)
                else:
                    f_dis, f_ch, m, flag = home_basic(soc, reserve, dev[s, j, K_PEAK_W], plan, flag)
                if dev[s, j, K_KIND] == KIND_HOME:
                    ii[s, j, I_FLAG] = 1 if flag else 0
                hi_dev[j] = hi
                fdis[j] = f_dis
                if f_ch == f_dis:
                    ef[ne], em[ne], elo[ne], ehi[ne], owner[ne] = f_dis, m, lo, hi, j
                    ne += 1
                else:
                    ef[ne], em[ne], elo[ne], ehi[ne], owner[ne] = f_dis, m, 0.0, hi, j
                    ef[ne + 1], em[ne + 1], elo[ne + 1], ehi[ne + 1], owner[ne + 1] = (
                        f_ch,
                        m,
                        lo,
                        0.0,
                        j,
                    )
                    ne += 2
            live = ne > 0
            p_solar = 0.0
            if live:
                avail = solar_w[s, sec] if smode == MODE_ON else 0.0
                if avail > 0.0:
                    ef[ne] = solar[s, Q_FW_FULL]
                    em[ne] = (solar[s, Q_FW_FULL] - solar[s, Q_FW_START]) / avail
                    elo[ne] = 0.0
                    ehi[ne] = avail
                    owner[ne] = -1
                    ne += 1
                # 3. the bus
                f, served = solve_bus(load, ef, em, elo, ehi, ne, bp)
                total = 0.0
                for e in range(ne):
                    pe = min(ehi[e], max(elo[e], (ef[e] - f) / em[e]))
                    total += pe
                    if owner[e] >= 0:
                        p[owner[e]] += pe
                    else:
                        p_solar = pe
                sacc[s, S_MAX_RESID_W] = max(sacc[s, S_MAX_RESID_W], abs(total - served))
                # 4. voltage: reactive droop, then the current limit of the inverters
                v = 1.0 - plan[_VDROOP] * qload / s_rating
                s_demand = math.sqrt(load * load + qload * qload)
                ratio = 1.0
                if s_demand > 0.0:
                    ratio = min(ratio, (s_rating + p_solar) / s_demand)
                if load > 0.0:
                    ratio = min(ratio, served / load)
                v *= max(0.0, ratio)
            else:
                f, v, served = 0.0, 0.0, 0.0
            # an exhausted device that cannot carry its share stops energising the bus: it is
            # out of energy, not tripped; the others carry on, or the house goes dark
            if live and served < load - 1.0:
                for j in range(d):
                    if ii[s, j, I_MODE] == MODE_ON:
                        soc = 100.0 * x[s, j, X_E_WH] / dev[s, j, K_CAP_WH]
                        if soc <= dev[s, j, K_RESERVE] + plan[_TAPER]:
                            ii[s, j, I_MODE] = MODE_WAIT
                            x[s, j, X_WAIT] = 0.0
                            for el in range(8):
                                timers[s, j, el] = 0.0
            # 5. protection, energy, roles
            for j in range(d):
                if ii[s, j, I_MODE] != MODE_ON:
                    continue
                if protect(f, v, trips[s, j], timers[s, j], dt):
                    ii[s, j, I_MODE] = MODE_TRIP
                    x[s, j, X_WAIT] = 0.0
                    acc[s, j, A_TRIPS] += 1.0
                    for el in range(8):
                        timers[s, j, el] = 0.0
            if smode == MODE_ON and live and protect(f, v, trips[s, d], timers[s, d], dt):
                bus[s, B_SOLAR_MODE] = MODE_TRIP
                bus[s, B_SOLAR_WAIT] = 0.0
                sacc[s, S_SOLAR_TRIPS] += 1.0
                for el in range(8):
                    timers[s, d, el] = 0.0
            any_energy = False
            home_spare = False
            for j in range(d):
                kind = dev[s, j, K_KIND]
                if kind == KIND_NONE:
                    continue
                pj = p[j]
                eta = dev[s, j, K_ETA]
                if pj > 0.0:
                    x[s, j, X_E_WH] -= pj * dt_h / eta
                    acc[s, j, A_OUT_WH] += pj * dt_h
                    acc[s, j, A_LOSS_WH] += pj * dt_h * (1.0 / eta - 1.0)
                elif pj < 0.0:
                    x[s, j, X_E_WH] -= pj * dt_h * eta
                    acc[s, j, A_IN_WH] -= pj * dt_h
                    acc[s, j, A_LOSS_WH] -= pj * dt_h * (1.0 - eta)
                if pj > dev[s, j, K_CONT_W] + 1e-6:
                    x[s, j, X_BUDGET] -= dt
                    acc[s, j, A_ABOVE_RUN] += dt
                    acc[s, j, A_MAX_ABOVE_S] = max(acc[s, j, A_MAX_ABOVE_S], acc[s, j, A_ABOVE_RUN])
                else:
                    x[s, j, X_BUDGET] = min(
                        dev[s, j, K_PEAK_S], x[s, j, X_BUDGET] + dt * plan[_RECOVER]
                    )
                    acc[s, j, A_ABOVE_RUN] = 0.0
                acc[s, j, A_MAX_RATIO] = max(acc[s, j, A_MAX_RATIO], pj / dev[s, j, K_PEAK_W])
                acc[s, j, A_MAX_OVER_W] = max(acc[s, j, A_MAX_OVER_W], pj - dev[s, j, K_PEAK_W])
                x[s, j, X_P] = pj
                soc = 100.0 * x[s, j, X_E_WH] / dev[s, j, K_CAP_WH]
                acc[s, j, A_MIN_SOC] = min(acc[s, j, A_MIN_SOC], soc)
                acc[s, j, A_MAX_SOC] = max(acc[s, j, A_MAX_SOC], soc)
                if soc > dev[s, j, K_RESERVE] + plan[_TAPER]:
                    any_energy = True
                # role
                mode = ii[s, j, I_MODE]
                if mode == MODE_ON:
                    if kind == KIND_VEHICLE:
                        carrying, x[s, j, X_BELOW], x[s, j, X_ABOVE] = carrier_role(
                            f,
                            fdis[j],
                            ii[s, j, I_FLAG] != 0,
                            x[s, j, X_BELOW],
                            x[s, j, X_ABOVE],
                            dt,
                            plan,
                        )
                        ii[s, j, I_FLAG] = 1 if carrying else 0
                        role = ROLE_FORMING if carrying else ROLE_FOLLOWING
                    else:
                        role = ROLE_FOLLOWING if ii[s, j, I_FLAG] != 0 else ROLE_FORMING
                        if ii[s, j, I_FLAG] == 0 and pj < hi_dev[j] - 1.0:
                            home_spare = True
                elif mode == MODE_TRIP:
                    role = ROLE_TRIPPED
                elif mode == MODE_SYNC:
                    role = ROLE_SYNCING
                else:
                    role = ROLE_WAITING
                old = ii[s, j, I_ROLE]
                if role != old:
                    counted = old >= ROLE_FORMING or role >= ROLE_FORMING  # not waiting<->syncing
                    first = sacc[s, S_FIRST_LIVE_S]
                    if counted and not math.isnan(first) and t >= first + _ROLE_GRACE_S:
                        acc[s, j, A_ROLE_CHANGES] += 1.0
                    ii[s, j, I_ROLE] = role
            # home battery first: vehicle energy while a home battery had headroom to give
            for j in range(d):
                if dev[s, j, K_KIND] == KIND_VEHICLE and p[j] > 1.0 and home_spare:
                    sacc[s, S_EARLY_WH] += p[j] * dt_h
            sacc[s, S_DEMAND_WH] += load * dt_h
            sacc[s, S_SERVED_WH] += served * dt_h
            sacc[s, S_SOLAR_WH] += p_solar * dt_h
            if live:
                sacc[s, S_LIVE_S] += dt
                if math.isnan(sacc[s, S_FIRST_LIVE_S]):
                    sacc[s, S_FIRST_LIVE_S] = t
                sacc[s, S_F_MIN] = min(sacc[s, S_F_MIN], f)
                sacc[s, S_F_MAX] = max(sacc[s, S_F_MAX], f)
                sacc[s, S_V_MIN] = min(sacc[s, S_V_MIN], v)
                sacc[s, S_V_MAX] = max(sacc[s, S_V_MAX], v)
                sacc[s, S_UNSERVED_WH] += max(0.0, load - served) * dt_h
            else:
                sacc[s, S_DARK_S] += dt
                sacc[s, S_UNSERVED_WH] += load * dt_h
                if any_energy and t >= grace:
                    sacc[s, S_DARK_ENERGY_S] += dt
            bus[s, B_F] = f
            bus[s, B_V] = v
            bus[s, B_LIVE] = 1.0 if live else 0.0
            # records: interval means of power, extremes of frequency and voltage
            if rec_every > 0:
                r = k // rec_every
                first_in = k % rec_every == 0
                if first_in:
                    racc[:] = 0.0
                    racc[R_F_MIN] = f
                    racc[R_F_MAX] = f
                    racc[R_V_MIN] = v
                    racc[R_V_MAX] = v
                racc[R_F_MIN] = min(racc[R_F_MIN], f)
                racc[R_F_MAX] = max(racc[R_F_MAX], f)
                racc[R_V_MIN] = min(racc[R_V_MIN], v)
                racc[R_V_MAX] = max(racc[R_V_MAX], v)
                racc[R_LOAD_W] += load
                racc[R_SERVED_W] += served
                racc[R_SOLAR_W] += p_solar
                for j in range(d):
                    racc[NR_BASE + NR_DEV * j] += p[j]
                    if live:
                        racc[NR_BASE + NR_DEV * j + 1] += qload * rating_dev[j] / s_rating
                last = k % rec_every == rec_every - 1 or k == k_total - 1  # a partial one too
                if last and r < rec.shape[1]:
                    count = k % rec_every + 1
                    rec[s, r, R_T] = (k + 1) * dt
                    for c in range(R_F_MIN, R_V_MAX + 1):
                        rec[s, r, c] = racc[c]
                    for c in range(R_LOAD_W, R_SOLAR_W + 1):
                        rec[s, r, c] = racc[c] / count
                    for j in range(d):
                        c0 = NR_BASE + NR_DEV * j
                        rec[s, r, c0] = racc[c0] / count
                        rec[s, r, c0 + 1] = racc[c0 + 1] / count
                        cap = dev[s, j, K_CAP_WH]
                        rec[s, r, c0 + 2] = 100.0 * x[s, j, X_E_WH] / cap if cap > 0 else 0.0
                        rec[s, r, c0 + 3] = ii[s, j, I_ROLE]
