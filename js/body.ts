/**
 * Pure rules the front end shares with Python, kept free of DOM so they can be tested in node.
 * The schema (fields, ranges, enums) always comes from Python; only JSON and whitespace
 * semantics are written here.
 */

export type Value = string | number | boolean | null;

export interface Field {
  name: string;
  /** The trait holding the value, when not `name` (a name the widget already uses). */
  trait?: string;
  type: "string" | "integer" | "number" | "boolean";
  label: string;
  description: string;
  required: boolean;
  minimum: number | null;
  maximum: number | null;
  enum: Value[] | null;
  multiline: boolean;
  omit_if_blank: boolean;
  allowed: string;
  control?: string;
  /** null is a value: "not set", left out of the body. */
  allow_unset?: boolean;
  exclusive_minimum?: boolean;
  exclusive_maximum?: boolean;
  multiple_of?: number | null;
  min_length?: number | null;
  max_length?: number | null;
}

/** The trait that holds a field's value. */
export const key = (f: Field): string => f.trait ?? f.name;

// Exactly the characters of Python's str.isspace(): Python decides blankness with .strip(),
// and JS trim() differs (it strips U+FEFF, keeps U+001C..U+001F and U+0085).
// biome-ignore lint/suspicious/noControlCharactersInRegex: these are the characters meant
const BLANK = /^[\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$/;

export const isBlank = (text: string): boolean => BLANK.test(text);

/** A number as Python's json.dumps writes it: integers as digits (the widget sends integral
 * floats as ints), other floats as repr() does (shortest digits, exponent below 1e-4 and from
 * 1e16 on, at least two exponent digits). */
export function pyNumber(x: number): string {
  if (Number.isSafeInteger(x)) return String(x);
  const [m, e] = x.toExponential().split("e");
  const exp = Number(e);
  if (exp < -4 || exp > 15) return `${m}e${exp < 0 ? "-" : "+"}${String(Math.abs(exp)).padStart(2, "0")}`;
  const fixed = String(x);
  return fixed.includes(".") ? fixed : `${fixed}.0`;
}

/**
 * The request body text, byte-equal to Python's dump_body(build_body(values)): fields in
 * schema order, unset (null) and blank omit_if_blank fields left out, two-space indent
 * (json.dumps with indent=2 and ensure_ascii=False escapes strings as JSON.stringify does).
 */
export function bodyText(fields: readonly Field[], get: (name: string) => unknown): string {
  const lines: string[] = [];
  for (const f of fields) {
    const value = get(key(f));
    if (value === null || value === undefined || (f.omit_if_blank && isBlank(String(value)))) continue;
    lines.push(`  ${JSON.stringify(f.name)}: ${typeof value === "number" ? pyNumber(value) : JSON.stringify(value)}`);
  }
  return lines.length ? `{\n${lines.join(",\n")}\n}` : "{}";
}

/**
 * The values Generate sends: for niji 7 (`builtin`) a random seed (-1) goes out as the seed
 * Python drew for the next run (`next_seed`), so that the preview is exactly the body and every
 * run knows its seed. Other models send their values as they are.
 */
export const sending =
  (get: (name: string) => unknown, builtin = true) =>
  (name: string): unknown =>
    builtin && name === "seed" && get("seed") === -1 ? get("next_seed") : get(name);

/** x = digits x 10^exp, exactly (the shortest digits, as Python's repr and Decimal read). */
function decimal(x: number): [bigint, number] {
  const [m, e] = x.toExponential().split("e");
  const frac = m.split(".")[1]?.length ?? 0;
  return [BigInt(m.replace(".", "")), Number(e) - frac];
}

/** Python's Decimal(repr(x)) % Decimal(repr(step)) == 0. */
function isMultiple(x: number, step: number): boolean {
  const [a, i] = decimal(x);
  const [b, j] = decimal(step);
  const k = Math.min(i, j);
  return (a * 10n ** BigInt(i - k)) % (b * 10n ** BigInt(j - k)) === 0n;
}

/** Whether `value` satisfies the field's rule (the same rule as schema.Field.validate). */
export function isValid(f: Field, value: unknown): boolean {
  if (value === null) return Boolean(f.allow_unset);
  if (f.type === "boolean") return typeof value === "boolean";
  if (f.type !== "string") {
    if (typeof value !== "number" || !Number.isFinite(value)) return false;
    // Whole numbers past 2^53 are not exact here, and reach Python as ints (1e21 and up are
    // written as floats): the widget refuses those ints, and an integer field all of them.
    const exact =
      Number.isSafeInteger(value) || (f.type !== "integer" && (!Number.isInteger(value) || Math.abs(value) >= 1e21));
    if (!exact) return false;
    if (f.enum) return f.enum.includes(value);
    const { minimum: lo, maximum: hi } = f;
    return (
      (lo === null || (f.exclusive_minimum ? value > lo : value >= lo)) &&
      (hi === null || (f.exclusive_maximum ? value < hi : value <= hi)) &&
      (!f.multiple_of || isMultiple(value, f.multiple_of))
    );
  }
  if (typeof value !== "string" || (f.enum && !f.enum.includes(value))) return false;
  const n = [...value].length; // code points, as Python's len()
  return !(
    (f.required && isBlank(value)) ||
    (f.max_length != null && n > f.max_length) ||
    (f.min_length != null && value !== "" && n < f.min_length)
  );
}

/** Raster types only: an SVG, even one the widget made a blob: URL of, can run script once
 * the download link has handed it over. */
export const IMAGE_TYPE = /^image\/(png|jpeg|gif|webp)$/i;

/** Only http(s) and raster data:image URLs come from state into the page; anything else
 * gives null. (blob: URLs are made by the widget itself from bytes the kernel sent.) */
export function safeUrl(url: unknown): string | null {
  if (typeof url !== "string") return null;
  const text = url.trim();
  if (/^data:image\/(png|jpeg|gif|webp)[;,]/i.test(text)) return text;
  try {
    const parsed = new URL(text);
    return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
  } catch {
    return null;
  }
}

/**
 * Whether the kernel sends this image's bytes (Python's is_local_url: a loopback host, which a
 * browser on another machine cannot reach). Only the plain spellings, so never a URL Python
 * would not send: any other stays a normal image.
 */
export const isLocalUrl = (url: string): boolean =>
  /^https?:\/\/(127(\.\d{1,3}){3}|localhost|\[::1\])(:\d+)?\//i.test(url.trim());

/** Lone surrogates cannot be sent as UTF-8; replace them as the browser would on submit. */
export function wellFormed(text: string): string {
  const s = text as string & { toWellFormed?: () => string };
  return typeof s.toWellFormed === "function" ? s.toWellFormed() : text;
}
