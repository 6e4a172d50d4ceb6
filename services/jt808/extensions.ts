// Cover, tipper and load weight of a muck truck are not in JT/T 808: terminals carry them in
// additional items of the location report (JT/T 808-2013 §8.18, table 27 leaves ids 0xE1-0xFF to
// vendors; local standards such as Beijing DB11/T 1077 and Shanghai DB31/T 398 define their own).
// Which item, byte and bit means what differs per terminal model, so it is configuration
// (jt808.layouts): a layout names the models it is for and where each value sits. A terminal whose
// model has no layout still reports positions; the rules that need cover or tipper skip its fixes,
// as they skip MQTT fixes without those fields. docs/jt808.md "Extension layouts" says how to add one.
import type { ExtensionLayout } from '../config/schema.ts';

/**
 * The layouts shipped, each from a public source. Local-standard layouts (DB11/T 1077, DB31/T 398)
 * are not among them: their texts are not public, and a layout guessed wrong would flag lawful
 * trucks. An integrator holding the terminal's manual adds one in the configuration.
 */
export const SHIPPED_LAYOUTS: readonly ExtensionLayout[] = [
  {
    name: 'gps51-load',
    models: [],
    source: 'GPS51 terminals: additional item 0x55, load weight, 8 bytes in 1/10 kg (SmallChi/JT808, src/JT808.Protocol.Extensions.GPS51/JT808_GPS51_Constants.cs)',
    loadKg: { item: 0x55, offset: 0, bytes: 8, kgPerUnit: 0.1 },
  },
  {
    name: 'waste-sim',
    models: ['WASTE-SIM'],
    source: 'the terminals of this project\'s simulator (services/jt808/terminal.ts): item 0xEC, byte 0 bit 0 cover closed, bit 1 tipper up; item 0x55 load as GPS51',
    coverClosed: { item: 0xec, byte: 0, bit: 0, setMeans: true },
    tipperUp: { item: 0xec, byte: 0, bit: 1, setMeans: true },
    loadKg: { item: 0x55, offset: 0, bytes: 8, kgPerUnit: 0.1 },
  },
];

export interface ExtensionValues {
  cover_closed?: boolean;
  tipper_up?: boolean;
  load_kg?: number;
}

/** The layout for a terminal model: the one naming it, else one for "*", else none. */
export function layoutFor(model: string | null, layouts: readonly ExtensionLayout[]): ExtensionLayout | null {
  if (model !== null) {
    const named = layouts.find((layout) => layout.models.includes(model));
    if (named) return named;
  }
  return layouts.find((layout) => layout.models.includes('*')) ?? null;
}

function bitOf(items: ReadonlyMap<number, Buffer>, where: NonNullable<ExtensionLayout['coverClosed']>): boolean | undefined {
  const byte = items.get(where.item)?.[where.byte];
  if (byte === undefined) return undefined;
  return ((byte >> where.bit) & 1) === 1 ? where.setMeans : !where.setMeans;
}

/** What a layout reads from one report's additional items; a value whose item is missing or short is left out. */
export function readExtensions(items: ReadonlyMap<number, Buffer>, layout: ExtensionLayout | null): ExtensionValues {
  const values: ExtensionValues = {};
  if (!layout) return values;
  const cover = layout.coverClosed && bitOf(items, layout.coverClosed);
  if (cover !== undefined) values.cover_closed = cover;
  const tipper = layout.tipperUp && bitOf(items, layout.tipperUp);
  if (tipper !== undefined) values.tipper_up = tipper;
  if (layout.loadKg) {
    const { item, offset, bytes, kgPerUnit } = layout.loadKg;
    const value = items.get(item);
    if (value && value.length >= offset + bytes) {
      const units = bytes === 8 ? Number(value.readBigUInt64BE(offset)) : value.readUIntBE(offset, bytes);
      // Kilograms to the gram: a 1/10 kg unit times 0.1 is not exact in binary.
      values.load_kg = Math.round(units * kgPerUnit * 1000) / 1000;
    }
  }
  return values;
}
