// Makes aedes parse each MQTT packet into an object allocated when that packet's first byte
// arrives. mqtt-packet's parser (parser.js, _newPacket) allocates the object for a connection's next
// packet as soon as the previous one is emitted, and fills it in when that next packet comes. A truck
// sending one fix a second keeps that empty object for a second, so V8 has promoted it to the old
// generation by the time the fix is written into it. V8's scavenger keeps every young object an old
// object points to alive, dead or not, until the next full collection: so every payload, and with it
// the socket read buffer it is a view of, was promoted as well. At 10,000 connections that is about
// 2.5 MB/s of external memory; past V8's external-memory limit every socket read then does a
// 5–10 ms slice of old-generation marking on the main thread (Heap::ReportExternalMemoryPressure),
// which held alerts back by up to half a second (docs/alerts.md, "Speed").
import type { Client } from 'aedes';

/** The part of mqtt-packet's Parser (parser.js) this relies on. */
interface PacketParser {
  packet: object;
  _parseHeader(): boolean;
}

function parserOf(client: Client): PacketParser | null {
  const parser = (client as Client & { _parser?: Partial<PacketParser> })._parser;
  if (!parser || typeof parser._parseHeader !== 'function' || typeof parser.packet !== 'object' || parser.packet === null) return null;
  return parser as PacketParser;
}

/**
 * Installs the fresh allocation on the client's parser. Returns false, changing nothing, when the
 * parser does not have the shape of mqtt-packet 9 (the broker still works; only the memory effect
 * above returns).
 */
export function parseIntoFreshPackets(client: Client): boolean {
  const parser = parserOf(client);
  if (!parser) return false;
  const parseHeader = parser._parseHeader;
  // A packet's header byte is the first thing _parseHeader reads; nothing of it is in the object yet.
  const Packet = parser.packet.constructor as new () => object;
  parser._parseHeader = function (this: PacketParser): boolean {
    this.packet = new Packet();
    return parseHeader.call(this);
  };
  return true;
}
