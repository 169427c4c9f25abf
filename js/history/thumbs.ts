/**
 * Thumbnails of the run store, as blob: URLs made in this view from bytes the kernel sends
 * (`history-thumbs`: one buffer per reference). Never a URL of the kernel's machine: a
 * browser elsewhere (JupyterHub, Binder, an SSH tunnel) could not load it. The most recently
 * used are kept; older ones are revoked.
 *
 * The gallery's thumbnails are asked for once it has been still for a moment (not for every
 * page of results that flashes by while the user types or flings the list), at most two
 * messages at a time, so that the kernel answers searches first.
 */
import { IMAGE_TYPE } from "../body";
import type { Ctx } from "../context";

/** Blob URLs kept per view (a screenful of the gallery uses about 160). */
const KEEP = 600;
/** References asked for in one message (the kernel's limit for thumbnails). */
const BATCH = 64;
/** The gallery still for this long (ms): its thumbnails are asked for; and at least this often. */
const STILL = 120;
const EVERY = 500;

export class Thumbs {
  private readonly urls = new Map<string, string>(); // ref -> blob: URL, least recently used first
  private readonly asked = new Set<string>();
  private readonly failed = new Set<string>();
  private gallery: string[] = []; // what the gallery shows now
  private readonly extra = new Set<string>(); // the drawer's, asked for at once
  private flying = 0;
  private timer = 0;
  private since = 0; // when the gallery's wish started waiting

  constructor(
    private readonly ctx: Ctx,
    private readonly changed: () => void,
  ) {
    ctx.cleanup(() => {
      window.clearTimeout(this.timer);
      this.clear();
    });
  }

  /** The blob: URL of `ref` ("" while it is not here). */
  url(ref: string | null | undefined): string {
    const url = ref ? this.urls.get(ref) : undefined;
    if (!ref || !url) return "";
    this.urls.delete(ref); // most recently used last
    this.urls.set(ref, url);
    return url;
  }

  /** The thumbnails the gallery shows now (asked for once it is still), or, with `now`,
   * others to ask for at once (the drawer's). */
  want(refs: Array<string | null | undefined>, now = false): void {
    const missing = refs.filter(
      (r): r is string => !!r && !this.urls.has(r) && !this.asked.has(r) && !this.failed.has(r),
    );
    if (now) {
      for (const r of missing) this.extra.add(r);
      this.flush();
      return;
    }
    this.gallery = missing;
    window.clearTimeout(this.timer);
    if (!missing.length) return;
    const waited = this.since ? performance.now() - this.since : 0;
    this.since ||= performance.now();
    this.timer = window.setTimeout(() => this.flush(), waited > EVERY ? 0 : STILL);
  }

  private flush(): void {
    this.since = 0;
    while (this.flying < 2) {
      const next = [...new Set([...this.extra, ...this.gallery])]
        .filter((r) => !this.urls.has(r) && !this.asked.has(r) && !this.failed.has(r))
        .slice(0, BATCH);
      if (!next.length) return;
      for (const r of next) this.extra.delete(r);
      this.flying++;
      void this.fetch(next).finally(() => {
        this.flying--;
        this.flush();
      });
    }
  }

  /** One image's blob: URL, fetched now (the drawer's full-size view); "" if it failed. */
  async one(ref: string): Promise<[string, string]> {
    const reply = await this.ctx.send("history-thumbs", { refs: [ref] });
    const data = reply.buffers?.[0];
    const type = String(reply.types?.[0] ?? "");
    if (!reply.ok || !data || !IMAGE_TYPE.test(type)) return ["", ""];
    return [URL.createObjectURL(new Blob([data], { type })), type];
  }

  private async fetch(refs: string[]): Promise<void> {
    for (const r of refs) this.asked.add(r);
    const reply = await this.ctx.send("history-thumbs", { refs });
    for (const r of refs) this.asked.delete(r);
    if (!reply.ok) return; // placeholders stay; the next render asks again
    (reply.refs as string[]).forEach((ref, i) => {
      const data = reply.buffers?.[i];
      const type = String(reply.types?.[i] ?? "");
      if (data && IMAGE_TYPE.test(type) && !this.urls.has(ref)) {
        this.urls.set(ref, URL.createObjectURL(new Blob([data], { type })));
      }
    });
    for (const ref of reply.failed ?? []) this.failed.add(ref);
    for (const [ref, url] of this.urls) {
      if (this.urls.size <= KEEP) break;
      URL.revokeObjectURL(url);
      this.urls.delete(ref);
    }
    this.changed();
  }

  /** Forget every thumbnail (the store changed under a reference: a run deleted). */
  clear(): void {
    for (const url of this.urls.values()) URL.revokeObjectURL(url);
    this.urls.clear();
    this.failed.clear();
  }
}
