// What one write to the registry may make the service do: the size of an import, its item count,
// the problems reported back, the positions of one geometry. The values are configuration
// (registry.* in config/schema.ts); the stores and routes read them from here.
import { registrySchema } from '../config/schema.ts';

export interface RegistryLimits {
  /** Largest bundle one import takes, in bytes. */
  importMaxBytes: number;
  /** Most items (devices and entities) in one bundle. */
  importMaxItems: number;
  /** Problems listed when a bundle is refused; the rest are only counted. */
  importMaxProblems: number;
  /** Most positions in one geometry. */
  maxGeometryVertices: number;
}

/** The limits of a registry configuration (or the defaults). */
export function registryLimits(config: Partial<RegistryLimits> = {}): RegistryLimits {
  const { importMaxBytes, importMaxItems, importMaxProblems, maxGeometryVertices } = registrySchema.parse(config);
  return { importMaxBytes, importMaxItems, importMaxProblems, maxGeometryVertices };
}

export const DEFAULT_LIMITS: RegistryLimits = registryLimits();
