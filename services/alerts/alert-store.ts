// Alerts in the registry database: one row per alert, its jurisdictions, and its history of
// changes. A finding from the rules either updates the alert it belongs to (same subject and type,
// overlapping in time or within alerts.mergeGapS of it) or raises a new one, so a long violation is
// one alert and a finding repeated on a replay changes nothing. Ids are derived from type, subject
// and start, so the same violation gets the same id whoever raises it.
import crypto from 'node:crypto';
import type { Alert } from '../contract/alerts.ts';
import { EVIDENCE_HEAD, type Evidence, type Finding } from '../contract/findings.ts';
import type { RegistryDb } from '../registry/db.ts';
import { lock, select, write, type Step, type Steps } from '../registry/steps.ts';
import { RegistryError } from '../registry/devices.ts';

export type AlertChange = 'raised' | 'updated' | 'acknowledged' | 'resolved';

/** An alert as the API, MQTT and webhooks carry it: the contract's fields and the case file. */
export interface AlertView extends Alert {
  version: number;
  updated_at: string;
  permit: { id: string; number: string | null } | null;
  detail: Record<string, unknown>;
  evidence: Evidence[];
  acknowledged: { by: string; at: string } | null;
  resolved: { by: string; at: string; note: string | null } | null;
}

/** What recording a finding changed: the alert as it is now, and how. */
export interface Recorded {
  alert: AlertView;
  change: AlertChange;
}

export interface OpenCount {
  type: string;
  jurisdiction: string;
  severity: string;
  status: string;
  count: number;
}

export interface AlertFilter {
  types?: string[];
  statuses?: string[];
  /** Alerts touching any of these jurisdictions. */
  jurisdictions?: string[];
  subject?: string;
  /** Event-time range the alert overlaps, epoch ms. */
  from?: number;
  to?: number;
  limit: number;
  offset: number;
}

interface Row {
  id: string;
  type: string;
  severity: string;
  status: string;
  subject_kind: string;
  subject_id: string;
  subject_device_id: string | null;
  subject_plate: string | null;
  lon: number | null;
  lat: number | null;
  started_at: number;
  ended_at: number | null;
  last_evidence_at: number;
  raised_at: number;
  updated_at: number;
  version: number;
  permit_id: string | null;
  permit_number: string | null;
  detail: string;
  evidence: string;
  acknowledged_by: string | null;
  acknowledged_at: number | null;
  resolved_by: string | null;
  resolved_at: number | null;
  resolution_note: string | null;
}

const iso = (ms: number) => new Date(ms).toISOString();

/** Alerts of a finding's subject and type read to find the one it belongs to (more overlap rarely). */
const CANDIDATES_MAX = 5;

/** The id of the n-th case (from 0) of a type for a subject starting at one instant. */
export function alertId(type: string, subjectId: string, startedAt: number, n = 0): string {
  return 'al_' + crypto.createHash('sha256').update(`${type}\n${subjectId}\n${startedAt}${n > 0 ? `\n${n}` : ''}`).digest('hex').slice(0, 24);
}

function evidenceKey(e: Evidence): string {
  return e.kind === 'ticket' ? `t:${e.ticket_id}` : `${e.kind === 'fix' ? 'f' : 'r'}:${e.device_id}:${e.ts}`;
}

export class AlertStore {
  constructor(
    private readonly db: RegistryDb,
    private readonly options: { mergeGapMs: (type: string) => number; evidenceMax: number; judge?: string | null },
  ) {}

  /**
   * Records a finding; returns the alert and what changed, or null when nothing did that anyone is
   * told of. Looking for the alert and raising one if there is none hold together across
   * processes: the subject's type is locked first (db.ts serialize(), an advisory lock on
   * PostgreSQL until the transaction ends), so that two processes recording the same violation at
   * once raise one alert, the second merging into it, instead of one each (READ COMMITTED lets
   * neither see the other's uncommitted alert).
   */
  record(finding: Finding, now: number): Recorded | null {
    return this.db.run(this.recording(finding, now));
  }

  /**
   * record() as steps (registry/steps.ts), for a caller that runs them in a transaction of its
   * own (the alert service's, with the webhook deliveries), here or without waiting (RegistryDb.runAsync).
   */
  *recording(finding: Finding, now: number): Steps<Recorded | null> {
    yield lock(lockKey(finding.type, finding.subject.id));
    const { existing, ids } = yield* this.matching(finding);
    if (!existing) return { alert: yield* this.insert(finding, now, ids), change: 'raised' };
    return yield* this.merge(existing.row, existing.jurisdictions, finding, now);
  }

  get(id: string): AlertView | undefined {
    const row = this.db.statement('SELECT * FROM alerts WHERE id = ?').get(id) as Row | undefined;
    return row ? this.view(row) : undefined;
  }

  history(id: string): { version: number; at: string; change: string; status: string; by: string | null; note: string | null }[] {
    // "by" is a reserved word of PostgreSQL (and of SQL): the column is quoted wherever it is named.
    const rows = this.db.statement('SELECT version, at, change, status, "by", note FROM alert_history WHERE alert_id = ? ORDER BY version').all(id) as {
      version: number;
      at: number;
      change: string;
      status: string;
      by: string | null;
      note: string | null;
    }[];
    return rows.map((r) => ({ ...r, at: iso(r.at) }));
  }

  list(filter: AlertFilter): { items: AlertView[]; total: number } {
    const where: string[] = [];
    const params: Record<string, unknown> = { limit: filter.limit, offset: filter.offset };
    const inList = (column: string, name: string, values: string[] | undefined) => {
      if (!values || values.length === 0) return;
      where.push(`${column} IN (${values.map((_, i) => `@${name}${i}`).join(', ')})`);
      values.forEach((v, i) => (params[`${name}${i}`] = v));
    };
    inList('type', 'type', filter.types);
    inList('status', 'status', filter.statuses);
    if (filter.jurisdictions) {
      if (filter.jurisdictions.length === 0) return { items: [], total: 0 };
      where.push(`id IN (SELECT alert_id FROM alert_jurisdictions WHERE jurisdiction_id IN (${filter.jurisdictions.map((_, i) => `@j${i}`).join(', ')}))`);
      filter.jurisdictions.forEach((j, i) => (params[`j${i}`] = j));
    }
    if (filter.subject) {
      where.push('(subject_id = @subject OR subject_device_id = @subject OR subject_plate = @subject)');
      params.subject = filter.subject;
    }
    if (filter.from !== undefined) {
      where.push('(ended_at IS NULL OR ended_at >= @from)');
      params.from = filter.from;
    }
    if (filter.to !== undefined) {
      where.push('started_at <= @to');
      params.to = filter.to;
    }
    const clause = where.length ? `WHERE ${where.join(' AND ')}` : '';
    const rows = this.db.statement(`SELECT * FROM alerts ${clause} ORDER BY started_at DESC, id LIMIT @limit OFFSET @offset`).all(params) as Row[];
    const { total } = this.db.statement(`SELECT COUNT(*) AS total FROM alerts ${clause}`).get(params) as { total: number };
    return { items: rows.map((r) => this.view(r)), total };
  }

  /** Alerts not resolved yet, per type, jurisdiction (or 'unassigned'), severity and status. */
  openCounts(): OpenCount[] {
    return this.db.statement(
        `SELECT a.type, COALESCE(j.jurisdiction_id, 'unassigned') AS jurisdiction, a.severity, a.status, COUNT(*) AS count
         FROM alerts a LEFT JOIN alert_jurisdictions j ON j.alert_id = a.id
         WHERE a.status != 'resolved' GROUP BY 1, 2, 3, 4`,
      )
      .all() as OpenCount[];
  }

  /** Violations of these types still going on (no end yet): subject id → type → started_at (epoch ms). */
  ongoing(types: readonly string[]): Map<string, Map<string, number>> {
    const rows = this.db.statement(`SELECT subject_id, type, MIN(started_at) AS started_at FROM alerts WHERE ended_at IS NULL AND type IN (${types.map(() => '?').join(', ')}) GROUP BY 1, 2`)
      .all(...types) as { subject_id: string; type: string; started_at: number }[];
    const out = new Map<string, Map<string, number>>();
    for (const r of rows) {
      const bySubject = out.get(r.subject_id) ?? new Map<string, number>();
      bySubject.set(r.type, r.started_at);
      out.set(r.subject_id, bySubject);
    }
    return out;
  }

  /** open → acknowledged, by a person. */
  acknowledge(id: string, by: string, now: number): AlertView {
    return this.db.run(this.transition(id, 'acknowledged', by, null, now));
  }

  /** open or acknowledged → resolved, by a person, with an optional note. */
  resolve(id: string, by: string, note: string | null, now: number): AlertView {
    return this.db.run(this.transition(id, 'resolved', by, note, now));
  }

  /** The lock an alert's changes are made under (its subject and type), or null when there is no such alert. */
  lockKeyOf(id: string): string | null {
    const row = this.db.statement('SELECT type, subject_id FROM alerts WHERE id = ?').get(id) as { type: string; subject_id: string } | undefined;
    return row ? lockKey(row.type, row.subject_id) : null;
  }

  /** acknowledge() and resolve() as steps (registry/steps.ts). */
  *transition(id: string, status: 'acknowledged' | 'resolved', by: string, note: string | null, now: number): Steps<AlertView> {
    const [subject] = (yield* select('SELECT type, subject_id FROM alerts WHERE id = ?', id)) as { type: string; subject_id: string }[];
    if (!subject) throw new RegistryError('not_found', `no alert ${id}`);
    // Under the lock record() takes, so that a finding merged into the alert meanwhile (by
    // another process) and this change do not both take the next version.
    yield lock(lockKey(subject.type, subject.subject_id));
    const [read] = yield* this.withJurisdictions('SELECT a.*, j.jurisdiction_id AS jurisdiction FROM alerts a LEFT JOIN alert_jurisdictions j ON j.alert_id = a.id WHERE a.id = ?', id);
    if (!read) throw new RegistryError('not_found', `no alert ${id}`);
    const { row, jurisdictions } = read;
    const from = status === 'acknowledged' ? ['open'] : ['open', 'acknowledged'];
    if (!from.includes(row.status)) throw new RegistryError('conflict', `alert ${id} is ${row.status}; it cannot become ${status}`);
    const updated: Row = {
      ...row,
      status,
      version: row.version + 1,
      updated_at: now,
      ...(status === 'acknowledged' ? { acknowledged_by: by, acknowledged_at: now } : { resolved_by: by, resolved_at: now, resolution_note: note }),
    };
    yield write(
      `UPDATE alerts SET status = @status, acknowledged_by = @acknowledged_by, acknowledged_at = @acknowledged_at, resolved_by = @resolved_by, resolved_at = @resolved_at,
         resolution_note = @resolution_note, version = @version, updated_at = @updated_at WHERE id = @id`,
      updated,
    );
    yield* this.historyRow(id, updated.version, now, status, status, by, note);
    return this.view(updated, jurisdictions);
  }

  /**
   * The alert a finding belongs to, with its jurisdictions (read with it: one statement); and the
   * ids of every alert of its subject and type overlapping it, when there are fewer than the
   * look-up reads (null: there may be more).
   */
  private *matching(f: Finding): Steps<{ existing: { row: Row; jurisdictions: string[] } | undefined; ids: Set<string> | null }> {
    const gap = this.options.mergeGapMs(f.type);
    const end = f.endedAt ?? lastEvidence(f);
    const candidates = yield* this.withJurisdictions(
      `SELECT a.*, j.jurisdiction_id AS jurisdiction FROM (
         SELECT * FROM alerts WHERE subject_id = ? AND type = ? AND started_at <= ? AND (ended_at IS NULL OR ended_at >= ?) ORDER BY started_at DESC LIMIT ${CANDIDATES_MAX}
       ) a LEFT JOIN alert_jurisdictions j ON j.alert_id = a.id ORDER BY a.started_at DESC, a.id`,
      f.subject.id,
      f.type,
      end + gap,
      f.startedAt - gap,
    );
    // A violation going on after an officer resolved its alert is a new case.
    const existing = candidates.find(({ row }) => row.status !== 'resolved' || lastEvidence(f) <= (row.ended_at ?? row.last_evidence_at));
    return { existing, ids: candidates.length < CANDIDATES_MAX ? new Set(candidates.map(({ row }) => row.id)) : null };
  }

  /**
   * Alerts read with their jurisdictions, one row per jurisdiction (`a.*` and `jurisdiction`, a
   * LEFT JOIN of alert_jurisdictions), as one entry per alert in the order read.
   */
  private *withJurisdictions(sql: string, ...params: unknown[]): Steps<{ row: Row; jurisdictions: string[] }[]> {
    const alerts = new Map<string, { row: Row; jurisdictions: string[] }>();
    for (const { jurisdiction, ...row } of (yield* select(sql, ...params)) as (Row & { jurisdiction: string | null })[]) {
      let alert = alerts.get(row.id);
      if (!alert) alerts.set(row.id, (alert = { row, jurisdictions: [] }));
      if (jurisdiction !== null) alert.jurisdictions.push(jurisdiction);
    }
    // Sorted here, not by the database's collation, so a view built from them lists them as one read back does.
    for (const alert of alerts.values()) alert.jurisdictions.sort();
    return [...alerts.values()];
  }

  /**
   * A case reopened after an officer resolved the previous one starts at the same instant: it
   * takes the next free id. `taken`: the ids of every alert that could have it (same subject,
   * type and start, so overlapping the finding: matching() read them under the subject's lock);
   * the row then needs no answer and goes with the COMMIT. Without them, the next free id is
   * found by trying.
   */
  private *insert(f: Finding, now: number, taken: Set<string> | null): Steps<AlertView> {
    const columns = 'id, type, severity, status, subject_kind, subject_id, subject_device_id, subject_plate, lon, lat, started_at, ended_at, last_evidence_at, raised_at, updated_at, version, permit_id, permit_number, detail, evidence';
    const insert = `INSERT INTO alerts (${columns}) VALUES (${columns.split(', ').map((c) => `@${c}`).join(', ')})`;
    let n = 0;
    let row = this.row(alertId(f.type, f.subject.id, f.startedAt), f, now);
    if (taken) {
      while (taken.has(row.id)) row = this.row(alertId(f.type, f.subject.id, f.startedAt, ++n), f, now);
      yield write(insert, row);
    } else {
      while (((yield* select(`${insert} ON CONFLICT (id) DO NOTHING RETURNING id`, row)) as unknown[]).length === 0) row = this.row(alertId(f.type, f.subject.id, f.startedAt, ++n), f, now);
    }
    yield* this.jurisdictionRows(row.id, f.jurisdictions);
    yield* this.historyRow(row.id, 1, now, 'raised', 'open', this.options.judge ?? null, null);
    return this.view(row, f.jurisdictions);
  }

  private *merge(row: Row, jurisdictions: string[], f: Finding, now: number): Steps<Recorded | null> {
    const fLast = lastEvidence(f);
    let endedAt = row.ended_at;
    if (f.endedAt === null) {
      if (row.ended_at !== null && fLast > row.ended_at) endedAt = null;
    } else if (row.ended_at === null ? f.endedAt >= row.last_evidence_at : f.endedAt > row.ended_at) {
      endedAt = f.endedAt;
    }
    const startedAt = Math.min(row.started_at, f.startedAt);
    const added = f.jurisdictions.filter((j) => !jurisdictions.includes(j));
    const known = JSON.parse(row.evidence) as Evidence[];
    const keys = new Set(known.map(evidenceKey));
    const fresh = f.evidence.filter((e) => !keys.has(evidenceKey(e)));
    const material = endedAt !== row.ended_at || startedAt !== row.started_at || added.length > 0;
    if (!material && fresh.length === 0) return null;
    // The row as it will be, worked out here from the one read under the subject's lock (every
    // writer of an alert holds it): the UPDATE needs no answer, and goes with the COMMIT.
    const updated: Row = {
      ...row,
      started_at: startedAt,
      ended_at: endedAt,
      last_evidence_at: Math.max(row.last_evidence_at, fLast),
      evidence: JSON.stringify(this.capped([...known, ...fresh].sort((a, b) => a.ts - b.ts))),
      detail: JSON.stringify({ ...(JSON.parse(row.detail) as object), ...f.detail }),
      version: material ? row.version + 1 : row.version,
      updated_at: material ? now : row.updated_at,
      permit_id: row.permit_id ?? f.permit?.id ?? null,
      permit_number: row.permit_number ?? f.permit?.number ?? null,
    };
    yield write(
      `UPDATE alerts SET started_at = @started_at, ended_at = @ended_at, last_evidence_at = @last_evidence_at, evidence = @evidence, detail = @detail,
         version = @version, updated_at = @updated_at, permit_id = @permit_id, permit_number = @permit_number WHERE id = @id`,
      updated,
    );
    if (!material) return null;
    yield* this.jurisdictionRows(row.id, added);
    yield* this.historyRow(row.id, updated.version, now, endedAt !== null && row.ended_at === null ? 'ended' : 'updated', row.status, this.options.judge ?? null, null);
    return { alert: this.view(updated, [...jurisdictions, ...added]), change: 'updated' };
  }

  /** A new alert's row. */
  private row(id: string, f: Finding, now: number): Row {
    return {
      id,
      type: f.type,
      severity: f.severity,
      status: 'open',
      subject_kind: f.subject.kind,
      subject_id: f.subject.id,
      subject_device_id: f.subject.deviceId ?? null,
      subject_plate: f.subject.plate ?? null,
      lon: f.location?.[0] ?? null,
      lat: f.location?.[1] ?? null,
      started_at: f.startedAt,
      ended_at: f.endedAt,
      last_evidence_at: lastEvidence(f),
      raised_at: now,
      updated_at: now,
      version: 1,
      permit_id: f.permit?.id ?? null,
      permit_number: f.permit?.number ?? null,
      detail: JSON.stringify(f.detail),
      evidence: JSON.stringify(this.capped(f.evidence)),
      acknowledged_by: null,
      acknowledged_at: null,
      resolved_by: null,
      resolved_at: null,
      resolution_note: null,
    };
  }

  private capped(evidence: Evidence[]): Evidence[] {
    const max = this.options.evidenceMax;
    return evidence.length <= max ? evidence : [...evidence.slice(0, EVIDENCE_HEAD), ...evidence.slice(evidence.length - (max - EVIDENCE_HEAD))];
  }

  // Written in the transaction of the change, their outcome not read: on PostgreSQL they go with
  // its next statement (steps.ts write()).
  private *jurisdictionRows(id: string, jurisdictions: string[]): Generator<Step, void> {
    for (const j of jurisdictions) yield write('INSERT INTO alert_jurisdictions (alert_id, jurisdiction_id) VALUES (?, ?) ON CONFLICT DO NOTHING', id, j);
  }

  private jurisdictionsOf(id: string): string[] {
    // Sorted here, not by the database's collation, so a view built from what was just written
    // lists them as one read back does.
    return (this.db.statement('SELECT jurisdiction_id FROM alert_jurisdictions WHERE alert_id = ?').all(id) as { jurisdiction_id: string }[]).map((r) => r.jurisdiction_id).sort();
  }

  private *historyRow(id: string, version: number, at: number, change: string, status: string, by: string | null, note: string | null): Generator<Step, void> {
    yield write(
      `INSERT INTO alert_history (alert_id, version, at, change, status, "by", note) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (alert_id, version) DO UPDATE SET at = excluded.at, change = excluded.change, status = excluded.status, "by" = excluded."by", note = excluded.note`,
      id, version, at, change, status, by, note,
    );
  }

  /** `jurisdictions`: known already (just written); otherwise read. */
  private view(row: Row, jurisdictions?: readonly string[]): AlertView {
    return {
      id: row.id,
      type: row.type as Alert['type'],
      severity: row.severity as Alert['severity'],
      status: row.status as Alert['status'],
      subject: {
        kind: row.subject_kind as Alert['subject']['kind'],
        id: row.subject_id,
        ...(row.subject_device_id ? { device_id: row.subject_device_id } : {}),
        ...(row.subject_plate ? { plate: row.subject_plate } : {}),
      },
      jurisdictions: jurisdictions ? [...new Set(jurisdictions)].sort() : this.jurisdictionsOf(row.id),
      location: row.lon === null || row.lat === null ? null : { type: 'Point', coordinates: [row.lon, row.lat] },
      started_at: iso(row.started_at),
      ended_at: row.ended_at === null ? null : iso(row.ended_at),
      raised_at: iso(row.raised_at),
      version: row.version,
      updated_at: iso(row.updated_at),
      permit: row.permit_id ? { id: row.permit_id, number: row.permit_number } : null,
      detail: JSON.parse(row.detail) as Record<string, unknown>,
      evidence: JSON.parse(row.evidence) as Evidence[],
      acknowledged: row.acknowledged_by && row.acknowledged_at !== null ? { by: row.acknowledged_by, at: iso(row.acknowledged_at) } : null,
      resolved: row.resolved_by && row.resolved_at !== null ? { by: row.resolved_by, at: iso(row.resolved_at), note: row.resolution_note } : null,
    };
  }
}

/** What record() and the status changes of one subject's alerts of one type hold (db.ts serialize()). */
export function lockKey(type: string, subjectId: string): string {
  return `alert:${type}:${subjectId}`;
}

function lastEvidence(f: Finding): number {
  let last = f.endedAt ?? f.startedAt;
  for (const e of f.evidence) last = Math.max(last, e.ts);
  return last;
}
