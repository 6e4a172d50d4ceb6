// A scripted MQTT 3.1.1 server on loopback, for what a real broker cannot be made to do: send
// packets a test chooses (too large, malformed, faster than acknowledged) and show every byte
// the client answers, in order. It grants every login and subscription; the test sends the rest.
import net from 'node:net';
import mqttPacket, { type Packet } from 'mqtt-packet';

export interface MqttPeer {
  url: string;
  /** Packets the client sent, in order, on every connection. */
  received: Packet[];
  /** Connections accepted so far. */
  connections(): number;
  /** Resolves once the client has subscribed on the current connection. */
  subscribed(): Promise<void>;
  /** Writes raw bytes to the current connection. */
  write(bytes: Buffer): void;
  send(packet: Packet): void;
  /** Closes the current connection (the client should reconnect). */
  drop(): void;
  /** Stops reading the current connection, as a broker whose process hangs. */
  hang(): void;
  close(): Promise<void>;
}

export async function startMqttPeer(): Promise<MqttPeer> {
  const received: Packet[] = [];
  let current: net.Socket | null = null;
  let accepted = 0;
  let onSubscribed: (() => void)[] = [];
  let subscribedNow = false;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    current = socket;
    subscribedNow = false;
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    socket.on('data', (chunk) => parser.parse(chunk));
    socket.on('error', () => undefined);
    parser.on('packet', (packet: Packet) => {
      received.push(packet);
      if (packet.cmd === 'connect') socket.write(mqttPacket.generate({ cmd: 'connack', returnCode: 0, sessionPresent: false }));
      if (packet.cmd === 'subscribe') {
        socket.write(mqttPacket.generate({ cmd: 'suback', messageId: packet.messageId!, granted: packet.subscriptions.map((s) => s.qos) }));
        subscribedNow = true;
        for (const resolve of onSubscribed) resolve();
        onSubscribed = [];
      }
      if (packet.cmd === 'pingreq') socket.write(mqttPacket.generate({ cmd: 'pingresp' }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    url: `mqtt://127.0.0.1:${port}`,
    received,
    connections: () => accepted,
    subscribed: () => (subscribedNow ? Promise.resolve() : new Promise((resolve) => onSubscribed.push(resolve))),
    write: (bytes) => current?.write(bytes),
    send: (packet) => current?.write(mqttPacket.generate(packet)),
    drop: () => current?.destroy(),
    hang: () => current?.pause(),
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
