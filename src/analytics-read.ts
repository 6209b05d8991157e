/** The analytics answer from whatever a transport offers: its rollups (the stores), or the answer itself (http). */
import { analyze, ANALYTICS_WINDOWS, windowRange, type Analytics, type AnalyticsWindow } from './analytics.js';
import { ReasonqError } from './errors.js';
import type { Transport } from './transport.js';

/** Throws UNSUPPORTED (501) for a transport with neither capability. */
export async function readAnalytics(transport: Transport, window: AnalyticsWindow, queue?: string, now = Date.now()): Promise<Analytics> {
  if (transport.rollups) {
    const { from, to } = windowRange(window, now);
    return analyze(await transport.rollups(new Date(from), new Date(to), ANALYTICS_WINDOWS[window].step_ms), window, now, queue);
  }
  if (transport.analytics) return transport.analytics(window, queue);
  throw new ReasonqError('UNSUPPORTED', `the ${transport.name} transport keeps no analytics`, { status: 501 });
}
