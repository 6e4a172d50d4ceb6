// Reads of current state and history for the API, as InfluxQL with bound parameters only
// (client.ts): device ids and times travel in `params`, never in the query text.
import { MEASUREMENTS } from '../contract/timeseries.ts';
import { quoteIdentifier, type InfluxStore, type SeriesResult } from './client.ts';

export interface Fix {
  time: string;
  device_id: string;
  lat: number;
  lon: number;
  speed_kmh: number;
  heading: number;
  ignition?: boolean | null;
  tipper_up?: boolean | null;
  cover_closed?: boolean | null;
  load_kg?: number | null;
}

export interface Level {
  time: string;
  device_id: string;
  fill_pct?: number | null;
  distance_mm?: number | null;
  temp_c?: number | null;
  tilt_deg?: number | null;
  tilted?: boolean | null;
  battery_v?: number | null;
  battery_pct?: number | null;
  lid_opens?: number | null;
}

export interface TicketRow {
  time: string;
  device_id: string;
  ticket_id: string;
  plate?: string | null;
  truck_device_id?: string | null;
  gross_kg: number;
  tare_kg: number;
  net_kg: number;
  category: string;
  direction: string;
  origin?: string | null;
}

/** How far back "current" state looks: a device silent for longer has no current state. */
const CURRENT_WINDOW = '7d';
const MAX_ROWS = 10_000;

function rows<T>(series: SeriesResult[]): T[] {
  return series.flatMap((s) =>
    s.values.map((values) => {
      const row: Record<string, unknown> = { ...(s.tags ?? {}) };
      s.columns.forEach((column, i) => {
        row[column] = column === 'time' ? new Date(values[i] as number).toISOString() : values[i];
      });
      return row as T;
    }),
  );
}

export class TelemetryReader {
  constructor(private readonly store: InfluxStore) {}

  /** The latest fix of every truck GPS device heard from in the last 7 days. */
  latestPositions(): Promise<Fix[]> {
    return this.latest<Fix>(MEASUREMENTS.truck);
  }

  /** A device's fixes between two instants (ISO-8601), oldest first. */
  track(deviceId: string, from: string, to: string): Promise<Fix[]> {
    return this.between<Fix>(MEASUREMENTS.truck, deviceId, from, to);
  }

  /** The latest reading of every bin sensor heard from in the last 7 days. */
  latestLevels(): Promise<Level[]> {
    return this.latest<Level>(MEASUREMENTS.bin);
  }

  /** The latest reading of every bin sensor heard from since `from` (epoch ms), whichever process took it. */
  latestLevelsSince(from: number): Promise<Level[]> {
    return this.latestSince<Level>(MEASUREMENTS.bin, from);
  }

  /** The latest fix of every truck GPS device heard from since `from` (epoch ms). */
  latestPositionsSince(from: number): Promise<Fix[]> {
    return this.latestSince<Fix>(MEASUREMENTS.truck, from);
  }

  /** A bin sensor's readings between two instants, oldest first. */
  levels(deviceId: string, from: string, to: string): Promise<Level[]> {
    return this.between<Level>(MEASUREMENTS.bin, deviceId, from, to);
  }

  /** Every truck's fixes in [from, to) (epoch ms), oldest first, as the rules replay them at start. */
  fixesBetween(from: number, to: number): Promise<Fix[]> {
    return this.allBetween<Fix>(MEASUREMENTS.truck, from, to);
  }

  /** Every bin reading in [from, to) (epoch ms), oldest first, as the rules replay them at start. */
  levelsBetween(from: number, to: number): Promise<Level[]> {
    return this.allBetween<Level>(MEASUREMENTS.bin, from, to);
  }

  /** Every weighbridge ticket in [from, to) (epoch ms), oldest first. */
  ticketsBetween(from: number, to: number): Promise<TicketRow[]> {
    return this.allBetween<TicketRow>(MEASUREMENTS.ticket, from, to);
  }

  /** Every point of a measurement (all devices) in [from, to) (epoch ms), oldest first. */
  private async allBetween<T>(measurement: string, from: number, to: number): Promise<T[]> {
    return rows<T>(await this.store.query(`SELECT * FROM ${quoteIdentifier(measurement)} WHERE time >= $from AND time < $to ORDER BY time ASC`, { from: new Date(from).toISOString(), to: new Date(to).toISOString() }));
  }

  private async latest<T>(measurement: string): Promise<T[]> {
    return rows<T>(await this.store.query(`SELECT * FROM ${quoteIdentifier(measurement)} WHERE time > now() - ${CURRENT_WINDOW} GROUP BY device_id ORDER BY time DESC LIMIT 1`));
  }

  private async latestSince<T>(measurement: string, from: number): Promise<T[]> {
    return rows<T>(await this.store.query(`SELECT * FROM ${quoteIdentifier(measurement)} WHERE time > $from GROUP BY device_id ORDER BY time DESC LIMIT 1`, { from: new Date(from).toISOString() }));
  }

  private async between<T>(measurement: string, deviceId: string, from: string, to: string): Promise<T[]> {
    return rows<T>(
      await this.store.query(`SELECT * FROM ${quoteIdentifier(measurement)} WHERE device_id = $device AND time >= $from AND time <= $to ORDER BY time ASC LIMIT ${MAX_ROWS}`, {
        device: deviceId,
        from,
        to,
      }),
    );
  }
}
