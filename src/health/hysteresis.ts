// Consecutive pass/fail hysteresis for active health checks: a tiny pure function, unit tested without sockets.

export interface HysteresisState {
  /** undefined until the first result: the first check decides at once, so a dead upstream is out after round one. */
  healthy: boolean | undefined;
  passes: number;
  fails: number;
}

export interface Thresholds {
  healthyThreshold: number;
  unhealthyThreshold: number;
}

export const INITIAL: HysteresisState = { healthy: undefined, passes: 0, fails: 0 };

/** Folds one check result into the state; `changed` is true only when `healthy` flips (or is first decided). */
export function observe(
  state: HysteresisState,
  ok: boolean,
  t: Thresholds,
): { state: HysteresisState; changed: boolean } {
  const passes = ok ? state.passes + 1 : 0;
  const fails = ok ? 0 : state.fails + 1;
  let healthy = state.healthy;
  if (healthy === undefined) healthy = ok;
  else if (ok && !healthy && passes >= t.healthyThreshold) healthy = true;
  else if (!ok && healthy && fails >= t.unhealthyThreshold) healthy = false;
  return { state: { healthy, passes, fails }, changed: healthy !== state.healthy };
}
