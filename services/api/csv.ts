// CSV for spreadsheets (RFC 4180): a header row, fields quoted when they hold a comma, quote or
// line break, CRLF line ends, and a byte-order mark so Excel opens the Chinese names as UTF-8.
export function toCsv(columns: readonly string[], rows: readonly Record<string, unknown>[]): string {
  const field = (value: unknown) => {
    const text = value === null || value === undefined ? '' : String(value);
    return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  };
  return '\uFEFF' + [columns.join(','), ...rows.map((row) => columns.map((c) => field(row[c])).join(','))].join('\r\n') + '\r\n';
}
