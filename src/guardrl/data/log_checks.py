"""The importer's checks of one chunk of a log: ids, steps, episode boundaries, end flags, numbers, actions,
propensities and costs, each failure naming the file, the row, the episode and step, and the column."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from guardrl.data.log_files import ImportValidationError, _clip

if TYPE_CHECKING:
    from guardrl.data.importer import _Carry, _Context


_INT64_MAX = np.iinfo(np.int64).max


def _where(ctx: _Context, row0: int, i: int, ep: np.ndarray | None, st: np.ndarray | None) -> str:
    if ep is not None and st is not None:
        return ctx.row(row0 + i + 1, int(ep[i]), int(st[i]))
    return ctx.row(row0 + i + 1)


def _numeric(ctx: _Context, batch: pa.RecordBatch, col: str, row0: int, integer: bool = False) -> np.ndarray:
    """A column as float64 (nulls as NaN) or, with ``integer``, as int64 (nulls refused); errors name the row."""
    arr = batch.column(batch.schema.get_field_index(col))
    t = arr.type
    kind = "an integer" if integer else "a number"
    ok = pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)
    if not ok:
        values = arr.to_pylist()
        for i, v in enumerate(values):
            try:
                float(v)
            except (TypeError, ValueError):
                got = "a missing value" if v is None else repr(_clip(str(v)) if isinstance(v, str) else v)
                where = f"{ctx.row(row0 + i + 1)}, column '{col}'"
                raise ImportValidationError(f"{where}: expected {kind}, got {got}") from None
        raise ImportValidationError(f"{ctx.path}: column '{col}': expected numbers, got type {t}")
    nulls = arr.is_null().to_numpy(zero_copy_only=False) if arr.null_count else None
    if nulls is not None and (integer or pa.types.is_boolean(t)):
        i = int(np.flatnonzero(nulls)[0])
        raise ImportValidationError(f"{ctx.row(row0 + i + 1)}, column '{col}': missing value")
    values = (arr.fill_null(0) if nulls is not None else arr).to_numpy(zero_copy_only=False)
    if integer:
        if pa.types.is_floating(t):
            bad = ~np.isfinite(values) | (values != np.round(values)) | (np.abs(values) >= 2.0**63)
        elif pa.types.is_unsigned_integer(t):
            bad = values > _INT64_MAX  # would wrap to a negative int64
        else:
            bad = np.zeros(len(values), bool)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ImportValidationError(
                f"{ctx.row(row0 + i + 1)}, column '{col}': expected an integer within int64, got {values[i].item()!r}"
            )
        return values.astype(np.int64)
    out = values.astype(np.float64)
    return np.where(nulls, np.nan, out) if nulls is not None else out


def _flag(ctx: _Context, batch: pa.RecordBatch, col: str, row0: int) -> np.ndarray:
    arr = batch.column(batch.schema.get_field_index(col))
    if pa.types.is_boolean(arr.type) and not arr.null_count:
        return arr.to_numpy(zero_copy_only=False).astype(bool)
    values = _numeric(ctx, batch, col, row0, integer=True)
    bad = (values != 0) & (values != 1)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ImportValidationError(
            f"{ctx.row(row0 + i + 1)}, column '{col}': expected true/false or 0/1, got {values[i].item()}"
        )
    return values.astype(bool)


def _validate_chunk(ctx: _Context, batch: pa.RecordBatch, obs_cols: list[str], carry: _Carry) -> dict[str, np.ndarray]:
    path, schema, n_actions = ctx.path, ctx.schema, ctx.n_actions
    row0 = carry.rows
    names = batch.schema.names
    ep = _numeric(ctx, batch, schema.episode_id, row0, integer=True)
    st = _numeric(ctx, batch, schema.step, row0, integer=True)

    def fail(mask: np.ndarray, col: str, what: str) -> None:
        if mask.any():
            i = int(np.flatnonzero(mask)[0])
            raise ImportValidationError(f"{_where(ctx, row0, i, ep, st)}, column '{col}': {what}")

    # observations, checked after the float32 cast they are stored in (1e39 is finite in float64, inf in float32)
    obs_field = batch.schema.field(schema.obs_column) if schema.obs_column in names else None
    if not obs_cols and obs_field is not None and not pa.types.is_list(obs_field.type):
        obs_cols = [schema.obs_column]  # one scalar column: a one-feature observation (e.g. a discrete state)

    def float32_columns(cols: list[str], what: str) -> np.ndarray:
        values = np.stack([_numeric(ctx, batch, c, row0) for c in cols], axis=1)
        with np.errstate(over="ignore"):
            as32 = values.astype(np.float32)
        for j, c in enumerate(cols):
            fail(~np.isfinite(values[:, j]), c, f"NaN or infinite {what}")
            fail(~np.isfinite(as32[:, j]), c, f"{what} outside the float32 range (|x| > 3.4e38)")
        return as32

    if obs_cols:
        obs = float32_columns(obs_cols, "observation")
    else:
        col = batch.column(batch.schema.get_field_index(schema.obs_column))
        values = col.to_pylist()
        widths = np.array([len(v) if isinstance(v, (list, tuple)) else -1 for v in values])
        fail(widths < 0, schema.obs_column, "expected a list of numbers")
        fail(widths == 0, schema.obs_column, "empty observation list (an observation needs at least one number)")
        first = carry.obs_dim if carry.obs_dim is not None else int(widths[0])
        fail(widths != first, schema.obs_column, f"observation width differs from the first row's ({first})")
        try:
            obs64 = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            number = (int, float)
            bad = np.array([not all(isinstance(x, number) and not isinstance(x, bool) for x in v) for v in values])
            fail(bad, schema.obs_column, "observation lists must hold numbers")
            msg = f"{path}: column '{schema.obs_column}': observation lists must hold numbers"
            raise ImportValidationError(msg) from None
        with np.errstate(over="ignore"):
            obs = obs64.astype(np.float32)
        fail(np.asarray(~np.isfinite(obs64).all(axis=1)), schema.obs_column, "NaN or infinite observation")
        fail(
            np.asarray(~np.isfinite(obs).all(axis=1)),
            schema.obs_column,
            "observation outside the float32 range (|x| > 3.4e38)",
        )
    carry.obs_dim = int(obs.shape[1])
    next_cols = [f"{schema.next_obs_prefix}{j}" for j in range(obs.shape[1])] if obs_cols else []
    present = [c for c in next_cols if c in names]
    if present and present != next_cols:
        missing = sorted(set(next_cols) - set(present))
        raise ImportValidationError(f"{path}: next-observation column(s) {missing} missing (have {present})")
    next_obs: np.ndarray | None = None
    if present:
        next_obs = float32_columns(next_cols, "next observation")

    if ctx.bounds is not None:
        actions = _continuous_actions(ctx, batch, row0, fail)
    else:
        actions = _numeric(ctx, batch, schema.action, row0, integer=True)
        fail((actions < 0) | (actions >= n_actions), schema.action, f"action outside [0, {n_actions})")
    rewards = _numeric(ctx, batch, schema.reward, row0)
    fail(~np.isfinite(rewards), schema.reward, "NaN or infinite reward")
    term = _flag(ctx, batch, schema.terminated, row0)
    trunc = _flag(ctx, batch, schema.truncated, row0)
    fail(term & trunc, schema.terminated, "both terminated and truncated")
    if schema.cost in names:
        costs = _numeric(ctx, batch, schema.cost, row0)
        fail(~np.isfinite(costs), schema.cost, "NaN or infinite cost")
        if not ctx.allow_negative_costs:
            fail(costs < 0, schema.cost, "negative cost (pass --allow-negative-costs if your costs can be negative)")
    else:
        costs = np.zeros(len(ep))
    if schema.propensity in names:
        props = _numeric(ctx, batch, schema.propensity, row0)  # an empty cell is an unknown propensity (NaN)
        if ctx.bounds is not None:  # a density: positive and finite, possibly above 1
            fail((props <= 0) | np.isinf(props), schema.propensity,
                 "propensity (the logged action's density) must be finite and > 0")  # fmt: skip
        else:
            fail((props <= 0) | (props > 1) | np.isinf(props), schema.propensity,
                 "propensity outside (0, 1]: a logged action must have had a positive probability")  # fmt: skip
    else:
        props = np.full(len(ep), np.nan)
    success = _flag(ctx, batch, schema.success, row0) if schema.success in names else np.zeros(len(ep), bool)

    # episode structure, continuing from the previous chunk
    first_ep = carry.episode if carry.episode is not None else int(ep[0]) - 1  # the file's first row starts one
    prev_ep = np.concatenate([[first_ep], ep[:-1]])
    prev_st = np.concatenate([[carry.step], st[:-1]])
    prev_end = np.concatenate([[carry.ended], (term | trunc)[:-1]])
    new_ep = ep != prev_ep
    if next_obs is not None:
        prev_next = np.concatenate([carry.next_obs if carry.next_obs is not None else obs[:1], next_obs[:-1]])
        within = ~new_ep & ~prev_end
        for j, c in enumerate(obs_cols):
            fail(within & (prev_next[:, j] != obs[:, j]), c,
                 f"differs from the previous row's {next_cols[j]} (same episode)")  # fmt: skip
        carry.next_obs = next_obs[-1:]
    continues = ~new_ep & prev_end
    if continues.any():
        i = int(np.flatnonzero(continues)[0])  # the flagged row is the one before: i - 1 (maybe in the last chunk)
        flag_col = schema.terminated
        if i > 0:
            flag_col = schema.terminated if term[i - 1] else schema.truncated
        raise ImportValidationError(
            f"{ctx.row(row0 + i, int(prev_ep[i]), int(prev_st[i]))}, column '{flag_col}': "
            f"flagged as the episode's last row (an end flag before its last row), but the episode continues on "
            f"row {row0 + i + 1}"
        )
    unended = new_ep & ~prev_end & (np.arange(len(ep)) + row0 > 0)
    if unended.any():
        before = int(prev_ep[np.flatnonzero(unended)[0]])
        fail(unended, schema.episode_id, f"episode {before} ended without a terminated/truncated flag on its last row")
    fail(new_ep & (st != 0), schema.step, "an episode must start at step 0")
    fail(~new_ep & (st == prev_st), schema.step, "step duplicated")
    fail(~new_ep & (st < prev_st), schema.step, "steps out of order")
    fail(~new_ep & (st > prev_st + 1), schema.step, "gap in steps (a step is missing)")
    starts = ep[new_ep]
    assert carry.seen is not None
    again = [e for e in starts.tolist() if e in carry.seen]
    if again or len(set(starts.tolist())) != len(starts):
        dup = again[0] if again else next(e for e in starts.tolist() if starts.tolist().count(e) > 1)
        i = int(np.flatnonzero(new_ep & (ep == dup))[-1])
        raise ImportValidationError(
            f"{_where(ctx, row0, i, ep, st)}, column '{schema.episode_id}': episode {dup} appears again; "
            "rows of an episode must be contiguous"
        )
    carry.seen.update(starts.tolist())
    carry.episode, carry.step, carry.ended = int(ep[-1]), int(st[-1]), bool((term | trunc)[-1])
    out = {"episode_ids": ep, "steps": st, "observations": obs, "actions": actions,
           "rewards": rewards, "costs": costs, "terminated": term, "truncated": trunc, "successes": success,
           "propensities": props}  # fmt: skip
    if next_obs is not None:
        out["next_observations"] = next_obs
    return out


def _continuous_actions(ctx: _Context, batch: pa.RecordBatch, row0: int, fail: Any) -> np.ndarray:
    """The (rows, k) float32 actions, each finite and inside the box; errors name the row and column."""
    assert ctx.bounds is not None
    low, high = np.asarray(ctx.bounds[0]), np.asarray(ctx.bounds[1])
    if ctx.action_cols == (ctx.schema.action,):  # one list column
        col = ctx.schema.action
        values = batch.column(batch.schema.get_field_index(col)).to_pylist()
        widths = np.array([len(v) if isinstance(v, (list, tuple)) else -1 for v in values])
        fail(widths != len(low), col, f"expected a list of {len(low)} numbers (the action box's width)")
        try:
            a64 = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise ImportValidationError(f"{ctx.path}: column '{col}': action lists must hold numbers") from None
        names = [f"{col}[{j}]" for j in range(len(low))]
    else:
        a64 = np.stack([_numeric(ctx, batch, c, row0) for c in ctx.action_cols], axis=1)
        names = list(ctx.action_cols)
    for j, c in enumerate(names):
        fail(~np.isfinite(a64[:, j]), c, "NaN or infinite action")
        fail((a64[:, j] < low[j]) | (a64[:, j] > high[j]), c, f"action outside its bounds [{low[j]:g}, {high[j]:g}]")
    a32 = a64.astype(np.float32)
    # a value on a bound that float32 cannot hold (-0.1) rounds outward; step it back inside the box
    a32 = np.where(a32 < low, np.nextafter(a32, np.float32(np.inf)), a32)
    return np.where(a32 > high, np.nextafter(a32, np.float32(-np.inf)), a32).astype(np.float32)
