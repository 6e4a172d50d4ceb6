// The indicator formats the agent reads (config `indicator.format`), each in its own file with its manual.
import type { FrameFormat } from './format.ts';
import { toledo, toledoNoChecksum } from './toledo.ts';
import { xk3190A9 } from './xk3190-a9.ts';

export const FORMATS = {
  'xk3190-a9': xk3190A9,
  toledo,
  'toledo-no-checksum': toledoNoChecksum,
} as const satisfies Record<string, FrameFormat>;

export type FormatName = keyof typeof FORMATS;
export const FORMAT_NAMES = Object.keys(FORMATS) as [FormatName, ...FormatName[]];
