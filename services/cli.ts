// `npm run cli -- <command>`: provisioning of devices and service accounts in the provisioning file.
// A running service picks up changes within a second; secrets are printed once and never stored.
import { parseArgs } from 'node:util';
import { DeviceFile, ProvisioningError } from './broker/device-file.ts';
import { ConfigError, loadConfig } from './config/load.ts';
import { DEVICE_CLASSES, isDeviceClass, topics } from './contract/topics.ts';

const HELP = `Usage: npm run cli -- <command> [options]

Commands:
  device add --class <bins|trucks|scales> --id <deviceId>   provision a device; prints its secret once
  device rotate --id <deviceId>                             new secret; the old one stops working
  device disable --id <deviceId>                            refuse its connects (and drop live ones)
  device enable --id <deviceId>
  device list                                               devices, classes and states (no secrets)
  service add --name <waste-name>                           service account (rules, dashboards, tools)

Options:
  --config FILE   configuration file (also WASTE_CONFIG); the device file is broker.devicesFile
  --json          machine-readable output
  -h, --help      show this help

Example:
  npm run cli -- device add --class trucks --id TRUCK-001
`;

function fail(message: string): never {
  process.stderr.write(`error: ${message}\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      class: { type: 'string' },
      id: { type: 'string' },
      name: { type: 'string' },
      config: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const [group, action] = positionals;
  if (values.help || !group) {
    process.stdout.write(HELP);
    return;
  }
  const config = loadConfig({ file: values.config });
  const file = new DeviceFile(config.broker.devicesFile);
  const out = (human: string, json: object): void => {
    process.stdout.write(values.json ? JSON.stringify(json) + '\n' : human + '\n');
  };
  const id = (): string => values.id ?? fail('--id is required');

  if (group === 'device' && action === 'add') {
    const deviceClass = values.class ?? fail(`--class is required (${DEVICE_CLASSES.join(', ')})`);
    if (!isDeviceClass(deviceClass)) fail(`--class must be one of ${DEVICE_CLASSES.join(', ')}`);
    const secret = await file.addDevice(id(), deviceClass);
    out(
      `device ${id()} (${deviceClass}) added to ${file.file}\n` +
        `  username: ${id()}\n  secret:   ${secret}   (shown once; it is stored only as a hash)\n` +
        `  publish:  ${topics.data(deviceClass, id())}\n  status:   ${topics.status(deviceClass, id())} (retained, set as the will)`,
      { id: id(), class: deviceClass, secret, topic: topics.data(deviceClass, id()) },
    );
  } else if (group === 'device' && action === 'rotate') {
    const secret = await file.rotateDevice(id());
    out(`device ${id()}: new secret ${secret} (shown once)`, { id: id(), secret });
  } else if (group === 'device' && (action === 'disable' || action === 'enable')) {
    await file.setEnabled(id(), action === 'enable');
    out(`device ${id()} ${action}d`, { id: id(), enabled: action === 'enable' });
  } else if (group === 'device' && action === 'list') {
    await file.load();
    const devices = file.list().devices.map(({ id: deviceId, class: deviceClass, enabled, created_at }) => ({ id: deviceId, class: deviceClass, enabled, created_at }));
    out(devices.map((d) => `${d.id}\t${d.class}\t${d.enabled ? 'enabled' : 'disabled'}\t${d.created_at}`).join('\n') || '(no devices)', devices);
  } else if (group === 'service' && action === 'add') {
    const name = values.name ?? fail('--name is required (it must start with "waste-")');
    const secret = await file.addService(name);
    out(`service account ${name} added\n  username: ${name}\n  secret:   ${secret}   (shown once)`, { name, secret });
  } else {
    fail(`unknown command "${positionals.join(' ')}"; see --help`);
  }
}

main().catch((error: unknown) => {
  if (error instanceof ProvisioningError || error instanceof ConfigError) fail(error.message);
  throw error;
});
