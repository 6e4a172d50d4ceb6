// GBK, in which JT/T 808 sends its strings (JT/T 808-2013 §4.3, STRING). Node decodes GBK
// (TextDecoder, WHATWG's gbk) but has no encoder; iconv-lite is the encoder. A character GBK has
// no code for is refused rather than sent as "?", which a driver or a registry would read as
// another text.
import iconv from 'iconv-lite';

const decoder = new TextDecoder('gbk');

/** A GBK field as text, the NUL padding of fixed-size fields removed. */
export function gbkText(bytes: Uint8Array): string {
  return decoder.decode(bytes).replace(/\0+$/, '');
}

/** Text as GBK bytes; throws a RangeError naming the first character GBK cannot carry. */
export function gbkEncode(text: string): Buffer {
  const bytes = iconv.encode(text, 'gbk');
  if (decoder.decode(bytes) === text) return bytes;
  for (const char of text) {
    if (decoder.decode(iconv.encode(char, 'gbk')) !== char) {
      throw new RangeError(`"${char}" (U+${char.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')}) has no GBK encoding`);
    }
  }
  throw new RangeError('the text has no GBK encoding');
}
