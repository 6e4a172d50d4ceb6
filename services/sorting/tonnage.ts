// Household-waste tonnage and the kitchen-waste separation rate (docs/architecture.md §4). Tickets count when
// a truck delivers household waste (direction "in", one of the four household categories); the
// ticket's origin names the community, which names the district. Tickets without a known origin
// count for the city only. No national formula is fixed, so the denominator is configurable.
import type { SortingConfig } from '../config/schema.ts';
import { parseTargets } from '../config/schema.ts';

export const HOUSEHOLD = ['kitchen', 'recyclable', 'hazardous', 'other'] as const;
export type HouseholdCategory = (typeof HOUSEHOLD)[number];
export type Scope = 'community' | 'district' | 'city';
export const CITY = 'city';

export type Tonnage = Record<HouseholdCategory, number>;

export interface ScopeTonnage {
  scope: Scope;
  scopeId: string;
  districtId: string | null;
  kg: Tonnage;
}

export interface CountedTicket {
  category: string;
  direction: string;
  net_kg: number;
  origin?: string | null;
}

export const emptyTonnage = (): Tonnage => ({ kitchen: 0, recyclable: 0, hazardous: 0, other: 0 });

export function isHousehold(ticket: { category: string; direction: string }): boolean {
  return ticket.direction === 'in' && (HOUSEHOLD as readonly string[]).includes(ticket.category);
}

/** Tonnage per community, district and the city, from one day's tickets. */
export function tonnageByScope(tickets: Iterable<CountedTicket>, districtOf: (communityId: string) => string | undefined): ScopeTonnage[] {
  const scopes = new Map<string, ScopeTonnage>();
  const add = (scope: Scope, scopeId: string, districtId: string | null, category: HouseholdCategory, kg: number) => {
    const key = `${scope}:${scopeId}`;
    let entry = scopes.get(key);
    if (!entry) scopes.set(key, (entry = { scope, scopeId, districtId, kg: emptyTonnage() }));
    entry.kg[category] += kg;
  };
  for (const t of tickets) {
    if (!isHousehold(t)) continue;
    const category = t.category as HouseholdCategory;
    add('city', CITY, null, category, t.net_kg);
    const district = t.origin ? districtOf(t.origin) : undefined;
    if (!district) continue;
    add('district', district, district, category, t.net_kg);
    add('community', t.origin!, district, category, t.net_kg);
  }
  return [...scopes.values()];
}

/** The separation rate (0-1) under the configured formula; null without any waste in the denominator. */
export function separationRate(kg: Tonnage, denominator: SortingConfig['denominator']): number | null {
  const below = denominator === 'all_four' ? kg.kitchen + kg.recyclable + kg.hazardous + kg.other : kg.kitchen + kg.other;
  return below > 0 ? kg.kitchen / below : null;
}

/** The target of a scope: its own, else its district's (for a community), else the city's, else sorting.targetRate. */
export function targetOf(config: SortingConfig): (scope: Scope, scopeId: string, districtId: string | null) => number {
  const targets = parseTargets(config.targets) ?? new Map<string, number>();
  return (scope, scopeId, districtId) =>
    targets.get(scope === 'city' ? CITY : `${scope}:${scopeId}`) ?? (districtId ? targets.get(`district:${districtId}`) : undefined) ?? targets.get(CITY) ?? config.targetRate;
}
