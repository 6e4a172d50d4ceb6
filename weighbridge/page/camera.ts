// What a plate-recognition camera pushes over HTTP when it reads a plate. Two shapes:
//   {"plate": "苏A12345"}                      this agent's own, for anything that can POST JSON
//   {"AlarmInfoPlate": {"ipaddr": "…", "result": {"PlateResult": {"license": "苏A12345", …}}}}
//       the push of 臻识 (Vzenith) cameras and of the cameras sharing their protocol (芊熠/Alphadigi),
//       as public integrations read it (AlarmInfoPlate.result.PlateResult.license). The shape is
//       from those integrations, not from the vendor's manual; other fields (pictures, colour,
//       confidence) are ignored.
// Hikvision and Dahua cameras push XML or multipart events; they are not read here (docs/weighbridge.md).
import { z } from 'zod';

const simple = z.object({ plate: z.string() });
const vzenith = z.object({
  AlarmInfoPlate: z.object({
    ipaddr: z.string().optional(),
    result: z.object({ PlateResult: z.object({ license: z.string() }) }),
  }),
});

export type CameraPush = { plate: string; vendor: 'simple' | 'vzenith'; camera: string | null };

/** The plate text a push carries, or null when it is neither shape. */
export function readCameraPush(body: unknown): CameraPush | null {
  const plain = simple.safeParse(body);
  if (plain.success) return { plate: plain.data.plate, vendor: 'simple', camera: null };
  const alarm = vzenith.safeParse(body);
  if (alarm.success) return { plate: alarm.data.AlarmInfoPlate.result.PlateResult.license, vendor: 'vzenith', camera: alarm.data.AlarmInfoPlate.ipaddr ?? null };
  return null;
}
