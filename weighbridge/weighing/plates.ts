// Chinese number plates as an operator types them or a camera reads them (GA 36-2018, 机动车号牌):
// a province abbreviation, the issuing authority's letter, then five characters (six on a
// new-energy plate), or four and a suffix (挂 trailer, 学 learner, 警 police, 港/澳 cross-border,
// 领 consulate, 试 test, 超 oversize). Stored compact ("苏E12345"): the registry matches plates
// without separators (services/registry/city-index.ts normalisePlate), so "苏E·12345" finds it.

const PROVINCES = '京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼';
const PLATE = new RegExp(`^[${PROVINCES}][A-Z](?:[A-Z0-9]{5,6}|[A-Z0-9]{4}[挂学警港澳领试超])$`);
/** What LPR cameras send when they saw a vehicle but no plate (臻识 "_无_", others "无牌车"). */
const NO_PLATE = /无/;

export type PlateResult = { ok: true; plate: string } | { ok: false; message: string };

/** Full-width letters and digits (an IME's ＡＢ１２) to ASCII, separators and spaces out, upper case. */
export function compactPlate(text: string): string {
  return text
    .replace(/[\uff10-\uff19\uff21-\uff3a\uff41-\uff5a]/g, (c) => String.fromCharCode(c.charCodeAt(0) - 0xfee0))
    .replace(/[\s·•.\-\u3000\u30fb]/g, '')
    .toUpperCase();
}

export function parsePlate(text: unknown): PlateResult {
  if (typeof text !== 'string' || text.length === 0) return { ok: false, message: '请输入车牌 / a plate is required' };
  if (text.length > 32) return { ok: false, message: '车牌太长 / plate too long' };
  if (NO_PLATE.test(text)) return { ok: false, message: `未识别到车牌 / no plate read ("${text}")` };
  const plate = compactPlate(text);
  if (!PLATE.test(plate)) return { ok: false, message: `车牌格式不对 / not a Chinese plate: "${text}" (e.g. 苏E12345, 苏AD12345, 苏E1234挂)` };
  return { ok: true, plate };
}
