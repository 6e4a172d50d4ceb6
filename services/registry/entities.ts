// The registry's entities, each defined once: its table, the zod schema of what a client sends,
// which fields are geometry (checked and converted to WGS-84 by geometry.ts) or JSON, and which
// may filter a list. The store (entity-store.ts) and the routes (api/routes/entities.ts) are
// generic over these definitions.
import { z } from 'zod';
import { UNSTORABLE } from '../contract/payloads.ts';
import { DEVICE_ID_PATTERN } from '../contract/topics.ts';
import { RegistryError } from './devices.ts';
import type { GeometryType } from './geometry.ts';

/** Ids chosen by the city or integrator (their own codes), safe in URLs and topics. */
export const entityId = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/, { error: 'must be 1-64 letters, digits, _ . : - starting with a letter or digit' });

/** GeoJSON geometry (or a Feature holding one); its full check is geometry.ts's. */
const geojson = z.union([
  z.object({ type: z.string(), coordinates: z.array(z.unknown()) }).passthrough(),
  z.object({ type: z.literal('Feature'), geometry: z.object({ type: z.string(), coordinates: z.array(z.unknown()) }).passthrough() }).passthrough(),
]);

/**
 * Free text (names, plates, permit numbers): no control characters or unpaired surrogates, as in
 * device payloads. Plates and names go into line protocol (contract/line-protocol.ts) and the
 * inbox; a line break in them has no business there.
 */
const text = (max: number, min = 1) => z.string().min(min).max(max).refine((value) => !UNSTORABLE.test(value), { error: 'must not contain control characters or unpaired surrogates' });

const hhmm = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, { error: 'must be HH:MM (24 h)' });
/** A calendar date, YYYY-MM-DD (local date in the city). */
const isoDate = z.string().regex(/^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/, { error: 'must be a date YYYY-MM-DD' });

/** A daily window; `to` before `from` runs over midnight (21:00-05:00). */
export const timeWindow = z.object({ from: hhmm, to: hhmm }).refine((w) => w.from !== w.to, { error: 'from and to must differ' });

export interface EntityDefinition {
  /** Collection name in the API path, e.g. "companies". */
  name: string;
  /** Singular, for messages. */
  singular: string;
  table: string;
  /** Fields a client sends (besides id); also the shape returned, with id and timestamps. */
  fields: z.ZodObject;
  geometry: Record<string, readonly GeometryType[]>;
  /** Fields stored as JSON text. */
  json: readonly string[];
  /** Fields a list may be filtered by (?field=value). */
  filters: readonly string[];
  /** Fields that hold the id of another table's row, checked before writing. */
  references: Record<string, string>;
  /**
   * Fields that are lists of other rows' ids, kept in a link table: `table(owner, other)`, the
   * other ids referencing `references`.
   */
  relations: Record<string, { table: string; owner: string; other: string; references: string }>;
  /** Checks across fields or rows that a schema cannot express; throws RegistryError. */
  check?: (row: Record<string, unknown>, lookup: (table: string, id: string) => Record<string, unknown> | undefined) => void;
}

const define = (definition: Omit<EntityDefinition, 'geometry' | 'json' | 'filters' | 'references' | 'relations'> & Partial<EntityDefinition>): EntityDefinition => ({
  geometry: {},
  json: [],
  filters: [],
  references: {},
  relations: {},
  ...definition,
});

const area = ['Polygon', 'MultiPolygon'] as const;

export const ENTITIES = {
  companies: define({
    name: 'companies',
    singular: 'company',
    table: 'companies',
    fields: z.object({ name: text(200, 1), credit_code: text(32, 0).nullish(), contact: text(200, 0).nullish() }),
  }),
  districts: define({
    name: 'districts',
    singular: 'district',
    table: 'districts',
    fields: z.object({ name: text(200, 1), geometry: geojson.nullish() }),
    geometry: { geometry: area },
  }),
  communities: define({
    name: 'communities',
    singular: 'community',
    table: 'communities',
    fields: z.object({ name: text(200, 1), district_id: entityId, geometry: geojson, dropoff_windows: z.array(timeWindow).max(24).default([]) }),
    geometry: { geometry: area },
    json: ['dropoff_windows'],
    filters: ['district_id'],
    references: { district_id: 'districts' },
  }),
  jurisdictions: define({
    name: 'jurisdictions',
    singular: 'jurisdiction',
    table: 'jurisdictions',
    fields: z.object({
      name: text(200, 1),
      enforcement_unit: text(200, 1),
      geometry: geojson,
      neighbour_ids: z.array(entityId).max(50).default([]).describe('Jurisdictions across the boundary, for case hand-over'),
    }),
    geometry: { geometry: area },
    relations: { neighbour_ids: { table: 'jurisdiction_neighbours', owner: 'jurisdiction_id', other: 'neighbour_id', references: 'jurisdictions' } },
  }),
  sites: define({
    name: 'sites',
    singular: 'site',
    table: 'sites',
    fields: z.object({
      kind: z.enum(['construction', 'disposal', 'transfer', 'plant']),
      name: text(200, 1),
      district_id: entityId.nullish(),
      geometry: geojson,
    }),
    geometry: { geometry: area },
    filters: ['kind', 'district_id'],
    references: { district_id: 'districts' },
  }),
  trucks: define({
    name: 'trucks',
    singular: 'truck',
    table: 'trucks',
    fields: z.object({
      plate: text(16, 2).describe('As printed, e.g. 苏E·12345'),
      company_id: entityId,
      fleet: z.enum(['muck', 'collection']),
      rated_gross_kg: z.number().positive().max(100_000),
      device_id: z.string().regex(DEVICE_ID_PATTERN).nullish(),
    }),
    filters: ['company_id', 'fleet', 'plate'],
    references: { company_id: 'companies', device_id: 'devices' },
  }),
  bins: define({
    name: 'bins',
    singular: 'bin',
    table: 'bins',
    fields: z.object({
      category: z.enum(['kitchen', 'recyclable', 'hazardous', 'other']),
      community_id: entityId.nullish(),
      location: geojson,
      depth_mm: z.number().positive().max(10_000).describe('Sensor to bottom, so a distance reading becomes a fill level'),
      device_id: z.string().regex(DEVICE_ID_PATTERN).nullish(),
    }),
    geometry: { location: ['Point'] },
    filters: ['community_id', 'category'],
    references: { community_id: 'communities', device_id: 'devices' },
  }),
  weighbridges: define({
    name: 'weighbridges',
    singular: 'weighbridge',
    table: 'weighbridges',
    fields: z.object({ site_id: entityId, device_id: z.string().regex(DEVICE_ID_PATTERN).nullish() }),
    filters: ['site_id'],
    references: { site_id: 'sites', device_id: 'devices' },
  }),
  permits: define({
    name: 'permits',
    singular: 'permit',
    table: 'permits',
    fields: z.object({
      number: text(64, 1).describe('The permit (处置证) number'),
      site_id: entityId.describe('The construction site the loads come from'),
      disposal_site_id: entityId.describe('The disposal site they must go to'),
      truck_ids: z.array(entityId).min(1).max(500),
      route: geojson.describe('The approved route, a LineString'),
      corridor_m: z.number().positive().max(1000).default(50).describe('Half-width of the corridor around the route'),
      valid_from: isoDate,
      valid_to: isoDate,
      time_windows: z.array(timeWindow).max(12).default([]).describe('Daily haulage windows; empty means at any time'),
      status: z.enum(['active', 'suspended', 'revoked']).default('active'),
    }),
    geometry: { route: ['LineString'] },
    json: ['time_windows'],
    filters: ['site_id', 'disposal_site_id', 'status', 'number'],
    references: { site_id: 'sites', disposal_site_id: 'sites' },
    relations: { truck_ids: { table: 'permit_trucks', owner: 'permit_id', other: 'truck_id', references: 'trucks' } },
    check: (row, lookup) => {
      if (typeof row.valid_from === 'string' && typeof row.valid_to === 'string' && row.valid_from > row.valid_to) {
        throw new RegistryError('invalid', `valid_from ${row.valid_from} is after valid_to ${row.valid_to}`);
      }
      for (const [field, kind] of [['site_id', 'construction'], ['disposal_site_id', 'disposal']] as const) {
        const site = typeof row[field] === 'string' ? lookup('sites', row[field] as string) : undefined;
        if (site && site.kind !== kind) throw new RegistryError('invalid', `${field}: site ${String(row[field])} is a ${String(site.kind)} site, not a ${kind} site`);
      }
    },
  }),
} satisfies Record<string, EntityDefinition>;

export type EntityName = keyof typeof ENTITIES;
