// The sensor decoders by the model provisioned on a device (the registry's sensor model, which the
// LoRaWAN bridge looks up here).
import type { SensorDecoder } from './decoder.ts';
import { draginoLdds75 } from './dragino-ldds75.ts';
import { milesightEm310Udl } from './milesight-em310-udl.ts';
import { milesightEm400Udl } from './milesight-em400-udl.ts';

export const SENSOR_DECODERS: ReadonlyMap<string, SensorDecoder> = new Map(
  [milesightEm310Udl, milesightEm400Udl, draginoLdds75].map((decoder) => [decoder.model, decoder]),
);

export const SENSOR_MODELS: readonly string[] = [...SENSOR_DECODERS.keys()];

/** The decoder of `model`, as provisioned (lower case), or undefined when the service has none. */
export function decoderFor(model: string): SensorDecoder | undefined {
  return SENSOR_DECODERS.get(model);
}
