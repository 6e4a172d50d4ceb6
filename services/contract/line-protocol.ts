// Escaping for InfluxDB line protocol: the one place every line written to the spool gets its tag
// values and string fields from. The spool cuts its batches at newline bytes (spool.ts read()), and
// InfluxDB 1.x and 2.x both read a raw newline inside a quoted string field as part of the string,
// so a string holding one would let a cut fall inside a record and make two halves, the second of
// which can be any point an attacker wrote. So no line built here ever holds a raw line break:
// - tag values: the official client's escaping (`,`, `=`, space, and `\n` `\r` `\t` as two
//   characters);
// - string field values: `"` and `\` escaped as the line-protocol reference asks ("String field
//   values ... escape double quotes and backslashes"), and every line break written as the two
//   characters `\n` / `\r`, which InfluxDB stores literally. Device strings never get that far:
//   the validator refuses control characters (payloads.ts), so what a device sent round-trips
//   exactly; registry strings are refused there too, and this is the backstop.
import { escape as clientEscape } from '@influxdata/influxdb-client';

/** Characters that must not reach a line raw, mapped to what stands for them. */
const STRING_FIELD_ESCAPES: Record<string, string> = { '"': '\\"', '\\': '\\\\', '\n': '\\n', '\r': '\\r' };
const STRING_FIELD_SPECIAL = /["\\\n\r]/g;

export const escape = {
  /** A tag value (or tag key), escaped. */
  tag: (value: string): string => clientEscape.tag(value),
  /** A string field value, quoted and escaped; never holds a raw line break. */
  quoted: (value: string): string => `"${value.replace(STRING_FIELD_SPECIAL, (c) => STRING_FIELD_ESCAPES[c]!)}"`,
};

