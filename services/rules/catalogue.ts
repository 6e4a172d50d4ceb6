// The rules, in the order they run for each fix or ticket (DESIGN.md §5). A permit problem is
// judged before what the permit allows; the body sensors' rules after the position's.
import { illegalDump } from './rules/illegal-dump.ts';
import { loadLoss } from './rules/load-loss.ts';
import { noPermit } from './rules/no-permit.ts';
import { outOfHours } from './rules/out-of-hours.ts';
import { overload } from './rules/overload.ts';
import { routeDeviation } from './rules/route-deviation.ts';
import { speeding } from './rules/speeding.ts';
import { uncoveredTransport } from './rules/uncovered-transport.ts';
import type { FixRule, TicketRule } from './types.ts';

export const FIX_RULES: readonly FixRule[] = [noPermit, outOfHours, routeDeviation, speeding, uncoveredTransport, illegalDump] as FixRule[];
export const TICKET_RULES: readonly TicketRule[] = [overload, loadLoss];
