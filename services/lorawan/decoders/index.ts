// The sensor decoders the service ships, by the sensor model provisioned on a device.
import type { SensorDecoder } from './decoder.ts';

const DECODERS: readonly SensorDecoder[] = [];

export const SENSOR_DECODERS: ReadonlyMap<string, SensorDecoder> = new Map(DECODERS.map((decoder) => [decoder.model, decoder]));
export const SENSOR_MODELS: readonly string[] = [...SENSOR_DECODERS.keys()];

export function decoderFor(model: string): SensorDecoder | undefined {
  return SENSOR_DECODERS.get(model);
}
