/**
 * Pure rules the front end shares with Python, kept free of DOM so they can be tested in node.
 * The schema (fields, ranges, enums) always comes from Python; only JSON and whitespace
 * semantics are written here.
 */

export interface Field {
  name: string;
  type: "string" | "integer" | "boolean";
  label: string;
  description: string;
  required: boolean;
  minimum: number | null;
  maximum: number | null;
  enum: string[] | null;
  multiline: boolean;
  omit_if_blank: boolean;
  allowed: string;
}

// Exactly the characters of Python's str.isspace(): Python decides blankness with .strip(),
// and JS trim() differs (it strips U+FEFF, keeps U+001C..U+001F and U+0085).
// biome-ignore lint/suspicious/noControlCharactersInRegex: these are the characters meant
const BLANK = /^[\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$/;

export const isBlank = (text: string): boolean => BLANK.test(text);

/**
 * The request body text, byte-equal to Python's dump_body(build_body(values)): fields in
 * schema order, blank omit_if_blank fields left out, two-space indent (json.dumps with
 * indent=2 and ensure_ascii=False writes what JSON.stringify(body, null, 2) writes).
 */
export function bodyText(fields: readonly Field[], get: (name: string) => unknown): string {
  const body: Record<string, unknown> = {};
  for (const f of fields) {
    const value = get(f.name);
    if (f.omit_if_blank && isBlank(String(value))) continue;
    body[f.name] = value;
  }
  return JSON.stringify(body, null, 2);
}

/**
 * The values Generate sends: a random seed (-1) goes out as the seed Python drew for the next
 * run (`next_seed`), so that the preview is exactly the body and every run knows its seed.
 */
export const sending =
  (get: (name: string) => unknown) =>
  (name: string): unknown =>
    name === "seed" && get("seed") === -1 ? get("next_seed") : get(name);

/** Whether `value` satisfies the field's rule (the same rule as schema.Field.validate). */
export function isValid(f: Field, value: unknown): boolean {
  if (f.type === "boolean") return typeof value === "boolean";
  if (f.type === "integer") {
    return (
      typeof value === "number" &&
      Number.isSafeInteger(value) &&
      (f.minimum === null || value >= f.minimum) &&
      (f.maximum === null || value <= f.maximum)
    );
  }
  if (typeof value !== "string") return false;
  if (f.enum && !f.enum.includes(value)) return false;
  return !(f.required && isBlank(value));
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
