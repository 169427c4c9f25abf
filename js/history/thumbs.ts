/**
 * Thumbnails of the run store, as blob: URLs made in this view from bytes the kernel sends
 * (`history-thumbs`: one buffer per reference). Never a URL of the kernel's machine: a
 * browser elsewhere (JupyterHub, Binder, an SSH tunnel) could not load it. The most recently
 * used are kept; older ones are revoked.
 */
import { IMAGE_TYPE } from "../body";
import type { Ctx } from "../context";

/** Blob URLs kept per view (a screenful of the gallery uses about 160). */
const KEEP = 600;
/** References asked for in one message (the kernel's limit for thumbnails). */
const BATCH = 64;

export class Thumbs {
  private readonly urls = new Map<string, string>(); // ref -> blob: URL, least recently used first
  private readonly asked = new Set<string>();
  private readonly failed = new Set<string>();

  constructor(
    private readonly ctx: Ctx,
    private readonly changed: () => void,
  ) {
    ctx.cleanup(() => this.clear());
  }

  /** The blob: URL of `ref` ("" while it is not here). */
  url(ref: string | null | undefined): string {
    const url = ref ? this.urls.get(ref) : undefined;
    if (!ref || !url) return "";
    this.urls.delete(ref); // most recently used last
    this.urls.set(ref, url);
    return url;
  }

  /** Ask the kernel for the references not here yet. */
  want(refs: Array<string | null | undefined>): void {
    const missing = [...new Set(refs)].filter(
      (r): r is string => !!r && !this.urls.has(r) && !this.asked.has(r) && !this.failed.has(r),
    );
    for (let i = 0; i < missing.length; i += BATCH) void this.fetch(missing.slice(i, i + BATCH));
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
