// What an MQTT connection failure means for the person running the agent: what failed, where, what to do.

/** MQTT 3.1.1 §3.2.2.3 CONNACK return codes, as the broker's docs/mqtt.md uses them. */
const REFUSALS: Record<number, string> = {
  1: 'the broker does not speak MQTT 3.1.1',
  2: 'the client id is held by other credentials: another program logged in as this device?',
  3: 'the server is unavailable for now (busy, or its store is full); the agent keeps trying and keeps its tickets',
  4: 'wrong device id or secret: check --device-id and the secret (WEIGHBRIDGE_SECRET or --secret-file), or provision the device (docs/weighbridge.md "Provisioning")',
  5: 'not authorised: on the service\'s own broker the device is disabled or not of class "scales"; Mosquitto answers 5 to a wrong device id or secret too, so check those (WEIGHBRIDGE_SECRET or --secret-file)',
};

export function explainMqttError(error: Error & { code?: string | number }, url: string, deviceId: string): string {
  if (typeof error.code === 'number') return `the broker at ${url} refused device ${deviceId} (CONNACK ${error.code}): ${REFUSALS[error.code] ?? error.message}`;
  switch (error.code) {
    case 'ECONNREFUSED':
      return `nothing accepts connections at ${url}: is the broker running, and are the host and port of --mqtt-url right? (tickets wait in the queue file meanwhile)`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `cannot resolve the broker's host in ${url}: check --mqtt-url and the PC's DNS (${error.code})`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'ETIMEDOUT':
      return `cannot reach the broker at ${url}: check the network, the firewall and the VPN to the command centre (${error.code})`;
    case 'ECONNRESET':
      return `the broker at ${url} dropped the connection (${error.code})`;
    default:
      return `broker ${url}: ${error.message}`;
  }
}
