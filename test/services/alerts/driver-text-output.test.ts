// The driver told on the truck's own terminal when an alert about the truck is raised
// (alerts/driver-text-output.ts), through the real JT/T 808 gateway to a terminal on TCP.
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AlertService } from '../../../services/alerts/alert-service.ts';
import { DRIVER_TEXTS, DriverTextOutput } from '../../../services/alerts/driver-text-output.ts';
import { alertsSchema, ingestSchema, jt808Schema } from '../../../services/config/schema.ts';
import type { Finding } from '../../../services/contract/findings.ts';
import { IngestPipeline } from '../../../services/ingest/pipeline.ts';
import { Jt808Gateway } from '../../../services/jt808/gateway.ts';
import { RESULT } from '../../../services/jt808/session.ts';
import { authenticationFrame } from '../../../services/jt808/terminal.ts';
import { createLogger } from '../../../services/log.ts';
import { RegistryDb } from '../../../services/registry/db.ts';
import { DeviceStore } from '../../../services/registry/devices.ts';
import { Spool } from '../../../services/spool/spool.ts';
import { TestTerminal } from '../../helpers/jt808.ts';
import { tempDir } from '../../helpers/service.ts';

const log = createLogger('silent');
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const finding = (type: Finding['type'], startedAt: number, endedAt: number | null): Finding => ({
  type,
  severity: 'warning',
  subject: { kind: 'truck', id: 'T1', plate: '苏E·00001', deviceId: 'GPS-1' },
  startedAt,
  endedAt,
  location: [120.58, 31.3],
  jurisdictions: ['WEST'],
  evidence: [{ kind: 'fix', ts: startedAt, device_id: 'GPS-1', lon: 120.58, lat: 31.3, speed_kmh: 30, cover_closed: false }],
  permit: null,
  detail: {},
});

describe('DriverTextOutput', () => {
  it('sends the alert type\'s text when an alert about the truck is raised, and nothing when it changes later', async () => {
    const dir = await tempDir('waste-driver-text-');
    const db = new RegistryDb(path.join(dir, 'registry.db'));
    db.open();
    cleanups.push(() => db.close());
    const spool = new Spool({ dir: path.join(dir, 'spool'), quotaBytes: 1 << 26, segmentBytes: 1 << 20, fsync: false });
    await spool.open();
    cleanups.push(() => spool.close());
    const devices = new DeviceStore(db);
    await devices.add('GPS-1', 'trucks', { phone: '13800138000', authCode: 'code-1' });
    const gateway = new Jt808Gateway({ config: jt808Schema.parse({ host: '127.0.0.1', port: 0 }), terminals: devices, log });
    await gateway.start(new IngestPipeline(spool, ingestSchema.parse({}), log));
    cleanups.push(() => gateway.stop());
    const terminal = await TestTerminal.connect(gateway.port()!);
    cleanups.push(() => terminal.close());
    terminal.send(authenticationFrame({ phone: '13800138000', edition: 2013, serial: 1 }, { code: 'code-1' }));
    expect(await terminal.response(1)).toMatchObject({ result: RESULT.ok });

    const alerts = new AlertService({ db, config: alertsSchema.parse({}), evidenceMax: 40, outputs: [new DriverTextOutput(gateway, log)], writeLines: async () => {}, log });
    const start = Date.now() - 600_000;
    alerts.onFinding(finding('uncovered_transport', start, null));
    expect(await terminal.next((m) => m.kind === 'text')).toMatchObject({ text: DRIVER_TEXTS.uncovered_transport });
    // The same violation going on, then ending: the alert changes, the driver is not told again.
    alerts.onFinding(finding('uncovered_transport', start, start + 120_000));
    await expect(terminal.next((m) => m.kind === 'text', 500)).rejects.toThrow(/no matching platform message/);
  });
});
