// The rules, in the order they run for each fix, ticket or bin reading (docs/architecture.md §4). A permit
// problem is judged before what the permit allows; the body sensors' rules after the position's.
import { deviceOffline } from './rules/device-offline.ts';
import { fireRisk } from './rules/fire-risk.ts';
import { illegalDump } from './rules/illegal-dump.ts';
import { loadLoss } from './rules/load-loss.ts';
import { lowBattery } from './rules/low-battery.ts';
import { missedCollection } from './rules/missed-collection.ts';
import { noPermit } from './rules/no-permit.ts';
import { outOfHours } from './rules/out-of-hours.ts';
import { outOfWindowDropoff } from './rules/out-of-window-dropoff.ts';
import { overflow } from './rules/overflow.ts';
import { overload } from './rules/overload.ts';
import { routeDeviation } from './rules/route-deviation.ts';
import { speeding } from './rules/speeding.ts';
import { tilt } from './rules/tilt.ts';
import { uncoveredTransport } from './rules/uncovered-transport.ts';
import type { BinRule, FixRule, TicketRule } from './types.ts';

export const FIX_RULES: readonly FixRule[] = [noPermit, outOfHours, routeDeviation, speeding, uncoveredTransport, illegalDump] as FixRule[];
export const TICKET_RULES: readonly TicketRule[] = [overload, loadLoss];
export const BIN_RULES: readonly BinRule[] = [overflow, missedCollection, fireRisk, tilt, lowBattery, deviceOffline, outOfWindowDropoff] as BinRule[];
