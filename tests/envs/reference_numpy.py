"""Independent NumPy re-implementations of the environments (no code shared with `envs/`).

Two flavours each:
- per-environment classes written with plain Python loops over channels / providers / tasks (the way the
  papers' reference code steps an environment); they receive the exogenous random draws (gains, arrival
  times, task sizes) as arguments so tests can drive them with the JAX environment's draws;
- batched versions vectorised over environments with NumPy, used as the "vectorised NumPy" reference in
  `benchmarks/env_throughput.py` and checked against the loop versions in the tests.

Constants are typed in again from shared/specs/aigc.md on purpose.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

# ----------------------------------------------------------------------------------------------------------------
# MSR
# ----------------------------------------------------------------------------------------------------------------


def msr_powers_loop(action, total_power):
    n = len(action)
    total = 0.0
    for a in action:
        total += abs(float(a))
    if total == 0.0:
        return [total_power / n] * n
    return [total_power * abs(float(a)) / total for a in action]


def msr_rate_loop(powers, gains, noise):
    rate = 0.0
    for i in range(len(gains)):
        n_i = noise[i] if np.ndim(noise) else noise
        rate += math.log2(1.0 + gains[i] * powers[i] / n_i)
    return rate


def water_filling_bisection(gains, noise, total_power, iters=200):
    """Water level by bisection on sum_i max(mu - n/g_i, 0) = P (float64)."""
    floors = np.broadcast_to(np.asarray(noise, np.float64), np.shape(gains)) / np.asarray(gains, np.float64)
    lo, hi = 0.0, float(np.max(floors) + total_power)
    for _ in range(iters):
        mu = 0.5 * (lo + hi)
        if np.sum(np.maximum(mu - floors, 0.0)) > total_power:
            hi = mu
        else:
            lo = mu
    return np.maximum(0.5 * (lo + hi) - floors, 0.0)


class MSRLoop:
    """One MSR environment; gains are supplied by the caller (the exogenous draws)."""

    def __init__(self, num_channels, total_power, noise=1.0, max_steps=1, regret=False):
        self.n, self.p, self.noise, self.max_steps, self.regret = num_channels, total_power, noise, max_steps, regret

    def obs(self):
        out = []
        for i in range(self.n):
            n_i = self.noise[i] if np.ndim(self.noise) else self.noise
            out.append(self.gains[i] / n_i)
        out.append(self.p)
        return np.array(out)

    def reset(self, gains):
        self.gains, self.t = list(gains), 0
        return self.obs()

    def step(self, action, next_gains):
        powers = msr_powers_loop(action, self.p)
        reward = msr_rate_loop(powers, self.gains, self.noise)
        if self.regret:
            reward -= msr_rate_loop(water_filling_bisection(self.gains, self.noise, self.p), self.gains, self.noise)
        self.t += 1
        self.gains = list(next_gains)
        return self.obs(), reward, self.t >= self.max_steps


def msr_step_vectorized(gains, actions, total_power, noise=1.0):
    """Batched MSR reward: gains, actions [B, N] -> rewards [B]."""
    mag = np.abs(actions)
    tot = mag.sum(-1, keepdims=True)
    share = np.where(tot > 0, mag / np.where(tot > 0, tot, 1.0), 1.0 / actions.shape[-1])
    return np.log2(1.0 + gains * total_power * share / noise).sum(-1)


# ----------------------------------------------------------------------------------------------------------------
# AIGC
# ----------------------------------------------------------------------------------------------------------------

AIGC_TABLE = [  # ax, ay, bx, by, cap
    (10, 0.00, 210, 0.80, 400), (80, 0.45, 200, 0.60, 500), (40, 0.00, 170, 0.75, 500), (0, 0.15, 170, 0.60, 900),
    (30, 0.25, 160, 0.85, 600), (30, 0.45, 180, 0.50, 700), (90, 0.25, 160, 0.95, 700), (70, 0.40, 190, 0.85, 600),
    (40, 0.05, 200, 0.50, 700), (30, 0.00, 180, 0.80, 500), (70, 0.15, 190, 0.85, 800), (0, 0.15, 200, 0.80, 700),
    (40, 0.35, 170, 0.50, 500), (90, 0.20, 230, 0.85, 400), (40, 0.40, 200, 0.55, 600), (70, 0.25, 220, 0.95, 800),
    (90, 0.45, 180, 0.70, 800), (10, 0.45, 220, 0.75, 800), (80, 0.35, 160, 0.55, 500), (40, 0.40, 210, 0.55, 600),
]


def aigc_duration(t):
    return 60.0 * (0.001 * t * t + 2.5 * t - 14.0)


def aigc_quality(t, ax, ay, bx, by):
    if t < ax:
        return 0.0
    if t > bx:
        return by - ay
    return (by - ay) / (bx - ax) * (t - ax)


class AIGCLoop:
    """One AIGC environment with a Python list of running tasks per provider.

    Exogenous draws are supplied by the caller: the (floored) time of the next arrival and its size."""

    def __init__(self, table=AIGC_TABLE, horizon=1e6, penalty=2.0):
        self.table, self.horizon, self.penalty = table, horizon, penalty

    def reset(self, size):
        self.running = [[] for _ in self.table]  # (size, arrival, duration)
        self.now, self.size, self.steps = 0, size, 0
        return self.obs()

    def avail(self, i):
        used = 0.0
        for task in self.running[i]:
            used += task[0]
        return self.table[i][4] - used

    def obs(self):
        out = []
        for i, row in enumerate(self.table):
            out += [row[4] / 900.0, self.avail(i) / row[4]]
        out += [self.size / 250.0, aigc_duration(self.size) / aigc_duration(250.0)]
        return np.array(out)

    def step(self, action, next_time, next_size):
        ax, ay, bx, by, cap = self.table[action]
        if self.size <= self.avail(action):
            reward = aigc_quality(self.size, ax, ay, bx, by)
            self.running[action].append((self.size, self.now, aigc_duration(self.size)))
        else:
            remaining = 0.0
            for size, arrival, duration in self.running[action]:
                remaining += 1.0 - (self.now - arrival) / duration
            reward = -self.penalty * (1.0 + remaining)
            self.running[action] = []
        self.steps += 1
        terminated = next_time >= self.horizon
        self.now = next_time
        for i in range(len(self.table)):
            self.running[i] = [task for task in self.running[i] if self.now < task[1] + task[2]]
        self.size = next_size
        return self.obs(), reward, terminated

    # heuristics, written from the spec's words
    def crash_avoid(self):
        best, best_avail = 0, -1.0
        for i in range(len(self.table)):
            if self.avail(i) > best_avail:
                best, best_avail = i, self.avail(i)
        return best

    def prophet(self):
        best, best_u = None, -1.0
        for i, (ax, ay, bx, by, cap) in enumerate(self.table):
            if self.size <= self.avail(i):
                u = round(aigc_quality(self.size, ax, ay, bx, by), 9)
                if u > best_u:
                    best, best_u = i, u
        return self.crash_avoid() if best is None else best


class AIGCVectorized:
    """B AIGC environments as NumPy arrays [B, M, S]; draws its own randomness with a NumPy Generator."""

    def __init__(self, batch, rng, slots=9, horizon=1e6, rate=1e-3):
        table = np.array(AIGC_TABLE, np.float64)
        self.ax, self.ay, self.bx, self.by, self.cap = (table[:, j] for j in range(5))
        self.b, self.rng, self.horizon, self.rate = batch, rng, horizon, rate
        m = len(table)
        self.size_ = np.zeros((batch, m, slots))
        self.arr = np.zeros((batch, m, slots))
        self.dur = np.ones((batch, m, slots))
        self.clock = np.zeros(batch)
        self.size = self._draw_size(batch)

    def _draw_size(self, n):
        return 100.0 + 10.0 * self.rng.integers(0, 16, n)

    def step(self, actions):
        rows = np.arange(self.b)
        now = np.floor(self.clock)
        avail = self.cap[actions] - self.size_[rows, actions].sum(-1)
        fits = self.size <= avail
        occupied = self.size_[rows, actions] > 0
        progress = (now[:, None] - self.arr[rows, actions]) / self.dur[rows, actions]
        crash = -2.0 * (1.0 + np.where(occupied, 1.0 - progress, 0.0).sum(-1))
        ax, ay, bx, by = self.ax[actions], self.ay[actions], self.bx[actions], self.by[actions]
        u = np.where(self.size < ax, 0.0, np.where(self.size > bx, by - ay, (by - ay) / (bx - ax) * (self.size - ax)))
        reward = np.where(fits, u, crash)
        slot = np.argmax(self.size_[rows, actions] == 0, axis=-1)
        start = rows[fits]
        self.size_[start, actions[fits], slot[fits]] = self.size[fits]
        self.arr[start, actions[fits], slot[fits]] = now[fits]
        self.dur[start, actions[fits], slot[fits]] = aigc_duration(self.size[fits])
        self.size_[rows[~fits], actions[~fits]] = 0.0
        self.clock = self.clock + self.rng.exponential(1.0 / self.rate, self.b)
        now = np.floor(self.clock)
        terminated = now >= self.horizon
        self.size_[now[:, None, None] - self.arr >= self.dur] = 0.0
        self.size = self._draw_size(self.b)
        # auto-reset
        self.size_[terminated] = 0.0
        self.clock[terminated] = 0.0
        obs = np.concatenate(
            [
                np.stack(np.broadcast_arrays(self.cap / 900.0, (self.cap - self.size_.sum(-1)) / self.cap), -1).reshape(
                    self.b, -1
                ),
                np.stack([self.size / 250.0, aigc_duration(self.size) / aigc_duration(250.0)], -1),
            ],
            -1,
        )
        return obs, reward, terminated


# ----------------------------------------------------------------------------------------------------------------
# CO (constants typed in again from shared/specs/problems.md)
# ----------------------------------------------------------------------------------------------------------------
CO_CONST = dict(F=2.5e9, kappa=1e-28, Pt=0.3, PI=0.1, B=1e6, N0=7.96159e-13, theta=1.0)


def co_cost_loop(size, cpu, weight, gain, offload, shares, c=CO_CONST):
    """Total cost of one instance with explicit per-terminal loops."""
    n = len(size)
    interference = 0.0
    for j in range(n):
        interference += c["Pt"] * gain[j] ** 2
    total = 0.0
    for i in range(n):
        a, b = weight[i], 1.0 - weight[i]
        cycles = 3000.0 * size[i]
        if offload[i] > 0:
            rate = c["B"] * math.log2(1.0 + c["Pt"] * gain[i] ** 2 / (c["N0"] + interference))
            upload = size[i] / rate
            server = cycles / (c["F"] * shares[i])
            total += a * (upload + server) + b * (c["Pt"] * upload + c["PI"] * server)
        else:
            total += a * cycles / cpu[i] + b * c["kappa"] * cpu[i] ** 2 * cycles
    return total


def co_delay_loop(size, cpu, gain, offload, shares, c=CO_CONST):
    n = len(size)
    interference = sum(c["Pt"] * gain[j] ** 2 for j in range(n))
    out = []
    for i in range(n):
        cycles = 3000.0 * size[i]
        if offload[i] > 0:
            rate = c["B"] * math.log2(1.0 + c["Pt"] * gain[i] ** 2 / (c["N0"] + interference))
            out.append(size[i] / rate + cycles / (c["F"] * shares[i]))
        else:
            out.append(cycles / cpu[i])
    return out


def _co_grid_solutions(n, share_step):
    """Every decision d in {0, 1}^N with every share vector on a `share_step` grid summing to 1 over the offloaded
    terminals (all-local first): yields (d, shares)."""
    units = int(round(1 / share_step))
    yield [0] * n, [0] * n
    for d in itertools.product([0, 1], repeat=n):
        idx = [i for i in range(n) if d[i]]
        if not idx:
            continue
        for combo in itertools.product(range(1, units + 1), repeat=len(idx) - 1):
            if sum(combo) >= units:
                continue
            shares = [0.0] * n
            for i, u in zip(idx, list(combo) + [units - sum(combo)]):
                shares[i] = u / units
            yield d, shares


def co_brute_force(size, cpu, weight, gain, share_step):
    """Enumerate every decision and every share vector on a `share_step` grid. Returns the minimal cost."""
    return min(co_cost_loop(size, cpu, weight, gain, d, f) for d, f in _co_grid_solutions(len(size), share_step))


def co_brute_force_within_delay(size, cpu, weight, gain, share_step, max_delay=1.0):
    """Like `co_brute_force`, but only over solutions whose every completion time is <= max_delay (s).
    Returns the minimal cost, or None when no grid solution meets the limit."""
    costs = [co_cost_loop(size, cpu, weight, gain, d, f) for d, f in _co_grid_solutions(len(size), share_step)
             if max(co_delay_loop(size, cpu, gain, d, f)) <= max_delay]
    return min(costs) if costs else None


# ----------------------------------------------------------------------------------------------------------------
# NU (constants from shared/specs/problems.md)
# ----------------------------------------------------------------------------------------------------------------
NU_CONST = dict(H=150.0, rho0=60.0, sigma2=110.0, P=18.0)


def nu_rate_loop(uav, powers, positions, c=NU_CONST):
    """Sum rate with explicit ranking: each user's interference is the power of every stronger user."""
    k = len(positions)
    h2 = [c["rho0"] / (c["H"] ** 2 + (uav[0] - x) ** 2 + (uav[1] - y) ** 2) for x, y in positions]
    rate = 0.0
    for u in range(k):
        interference = 0.0
        for v in range(k):
            if h2[v] > h2[u] or (h2[v] == h2[u] and v < u):
                interference += powers[v]
        rate += math.log2(1.0 + powers[u] / (interference + c["sigma2"] / h2[u]))  # float64: accurate at 1e-4
    return rate


# ----------------------------------------------------------------------------------------------------------------
# FD-ISAC (seed 003 eqs. 11-13, Table I), float64 with explicit loops over users
# ----------------------------------------------------------------------------------------------------------------
def fd_channel(pos, n, rho0=4.16e-6, alpha=3.6, height=100.0):
    d = math.sqrt(pos[0] ** 2 + pos[1] ** 2 + height**2)
    theta = math.atan2(pos[1], pos[0])
    a = np.array([np.exp(1j * math.pi * i * math.sin(theta)) for i in range(n)]) / math.sqrt(n)
    return math.sqrt(rho0 * d ** (-alpha)) * a


def fd_sum_rate_loop(dl_pos, ul_pos, V, W, p, sigma2, clutter_deg=(-50.0, 20.0), inr_db=20.0, nt=6, nr=6):
    g = [fd_channel(x, nt) for x in dl_pos]
    h = [fd_channel(x, nr) for x in ul_pos]
    G = np.zeros((nr, nt), complex)
    for ang in clutter_deg:
        t = math.radians(ang)
        a_r = np.array([np.exp(1j * math.pi * i * math.sin(t)) for i in range(nr)]) / math.sqrt(nr)
        a_t = np.array([np.exp(1j * math.pi * i * math.sin(t)) for i in range(nt)]) / math.sqrt(nt)
        G += math.sqrt(10 ** (inr_db / 10) * sigma2) * np.outer(a_r, a_t.conj())
    Q = sum(np.outer(v, v.conj()) for v in V)
    rate = 0.0
    for k in range(len(V)):
        rate += math.log2(1 + abs(np.vdot(g[k], V[k])) ** 2 / sigma2)
    for l in range(len(W)):
        R = G @ Q @ G.conj().T + sigma2 * np.eye(nr)
        for m in range(len(W)):
            if m != l:
                R = R + p[m] * np.outer(h[m], h[m].conj())
        sinr = p[l] * abs(np.vdot(W[l], h[l])) ** 2 / np.real(np.vdot(W[l], R @ W[l]))
        rate += math.log2(1 + sinr)
    return rate


def nu_reference_power_grid(total=18.0, step=0.1):
    """DiffSG's NU power candidates as its `feasible_solution()` filters them: p_strongest and p_middle on a `step`
    grid of cell midpoints (step/2, 3 step/2, ...), p_weakest = total - the two, and the ordering strict,
    p_strongest < p_middle < p_weakest (ties excluded, so the equal split P/3 is never a candidate).
    Returns [C, 3] (strongest first)."""
    mids = step / 2 + step * np.arange(int(round(total / step)))
    p1, p2 = np.meshgrid(mids, mids, indexing="ij")
    p3 = total - p1 - p2
    keep = (p1 < p2 - 1e-9) & (p2 < p3 - 1e-9)
    return np.stack([p1[keep], p2[keep], p3[keep]], -1)


def nu_reference_search(positions, c=NU_CONST, step=1.0, power_step=0.1, chunk=2048):
    """The reference's exhaustive NU search in float64 NumPy: UAV on the `step` grid inside the terminals' triangle
    x every tie-excluding ordered power split (`nu_reference_power_grid`). Returns (best rate, uav [2], powers
    [3] in user order)."""
    pos = np.asarray(positions, np.float64)
    axis = np.arange(0.0, 400.0 + 1e-9, step)
    X, Y = (g.ravel() for g in np.meshgrid(axis, axis, indexing="ij"))
    a, b, cc = pos
    cross = lambda o, u: (u[0] - o[0]) * (Y - o[1]) - (u[1] - o[1]) * (X - o[0])
    s1, s2, s3 = cross(a, b), cross(b, cc), cross(cc, a)
    inside = ((s1 >= 0) & (s2 >= 0) & (s3 >= 0)) | ((s1 <= 0) & (s2 <= 0) & (s3 <= 0))
    X, Y = X[inside], Y[inside]
    noise = np.stack([c["sigma2"] * (c["H"] ** 2 + (X - px) ** 2 + (Y - py) ** 2) / c["rho0"] for px, py in pos], -1)
    order = np.argsort(noise, -1)  # strongest (smallest sigma^2 / h^2) first
    n = np.take_along_axis(noise, order, -1)
    grid = nu_reference_power_grid(c["P"], power_step)
    above = np.cumsum(grid, -1) - grid
    best, arg = -np.inf, (0, 0)
    for lo in range(0, len(X), chunk):
        nn = n[lo:lo + chunk, None, :]
        rates = np.sum(np.log1p(grid[None] / (above[None] + nn)), -1) / np.log(2.0)  # [chunk, C]
        i, j = np.unravel_index(np.argmax(rates), rates.shape)
        if rates[i, j] > best:
            best, arg = rates[i, j], (lo + i, j)
    i, j = arg
    powers = np.empty(3)
    powers[order[i]] = grid[j]
    return float(best), np.array([X[i], Y[i]]), powers
