// The bare broker hop for comparison: a plain aedes on TCP, no authentication, no hooks.
import net from 'node:net';
import { Aedes } from 'aedes';

const port = Number(process.argv[2] ?? 0);
const aedes = await Aedes.createBroker();
const server = net.createServer(aedes.handle);
server.listen(port, '127.0.0.1', () => process.stdout.write(JSON.stringify({ event: 'ready', port: (server.address() as net.AddressInfo).port }) + '\n'));
process.on('SIGTERM', () => {
  process.stdout.write(JSON.stringify({ event: 'rss', maxRssMb: process.resourceUsage().maxRSS / 1024 }) + '\n');
  process.exit(0);
});
