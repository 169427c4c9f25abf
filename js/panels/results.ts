/**
 * The results panel: the shown run's images (or, beside a run that failed, those of the last
 * run that succeeded), each with a download named `<task id>-<n>.<ext>`, enlarged on a click
 * by the image viewer (js/lazy/viewer.ts, loaded then). Loopback images (the sandbox's) are
 * shown from bytes the kernel sends (`image-data`), as blob: URLs made here and revoked when
 * their run leaves `tasks` or the view goes; without a kernel, from the thumbnails saved in the
 * model; never from state as raw HTML.
 */
import { IMAGE_TYPE, isLocalUrl, safeUrl } from "../body";
import type { Ctx, Run } from "../context";
import { btn, h, listen } from "../dom";
import type { ShowPictures } from "../lazy/viewer";
import type { Panel } from "./panel";

interface Shown {
  url: string; // the output URL (data-url)
  src: string; // what the img shows; "" while it cannot be shown
  ext: string;
}

const extOf = (type: string, url: string): string => {
  const t = (type.split("/")[1] || /\.(png|jpe?g|gif|webp)(?:$|[?#])/i.exec(url)?.[1] || "png").toLowerCase();
  return t === "jpeg" ? "jpg" : t;
};

export const resultsPanel: Panel = {
  area: "wide",
  mount(ctx: Ctx): HTMLElement {
    const gallery = h("div", { cls: "images", $: "images" });
    const caption = h("p", { cls: "muted", $: "images-note" });
    const blobs = new Map<string, [string, string]>(); // output URL -> [blob: URL, type]
    const direct = new Set<string>(); // loopback URLs the kernel could not send: tried as is
    let shownKey = "";

    /** The run whose images are shown: the shown run, or beside a run that ended without
     * images, the last run before it that succeeded. */
    function pictured(): [Run | undefined, string] {
      const all = ctx.runs();
      const run = ctx.shownRun();
      if (!run || run.outputs.length || run.state === "starting" || run.state === "running") return [run, ""];
      const before = all.slice(0, all.indexOf(run)).reverse();
      const good = before.find((r) => r.state === "success" && r.outputs.length);
      if (!good) return [run, ""];
      return [good, `Images of run #${all.indexOf(good) + 1}, the last that succeeded.`];
    }

    /** What an img shows for an output URL: the kernel's bytes, a saved thumbnail, or the URL
     * itself (null: never shown). Other panels (the task panel's run buttons) use it too. */
    function source(url: string): Shown | null {
      const safe = safeUrl(url);
      const blob = blobs.get(url);
      if (blob) return { url, src: blob[0], ext: extOf(blob[1], url) };
      if (safe === null) return null;
      if (isLocalUrl(safe) && !direct.has(url)) {
        const thumbs = (ctx.get("thumbnails") as Record<string, string> | undefined) ?? {};
        return { url, src: safeUrl(thumbs[url]) ?? "", ext: "jpg" };
      }
      return { url, src: safe, ext: extOf("", safe) };
    }
    ctx.src = (url) => source(url)?.src ?? "";

    function sources(run: Run | undefined): Shown[] {
      return (run?.outputs ?? []).map(source).filter((s): s is Shown => s !== null);
    }

    function render(): void {
      const [run, note] = pictured();
      const shown = sources(run);
      const waiting = ctx.gone ? "not in the saved notebook: run the cell again" : "loading…";
      const key = [note, waiting, run?.task_id, ...shown.map((s) => `${s.url} ${s.src}`)].join("\n");
      if (key === shownKey) return;
      shownKey = key;
      caption.textContent = note;
      caption.hidden = !note;
      const stem = run?.task_id || "siray";
      const viewable = shown.filter((s) => s.src);
      const pictures = viewable.map((s, i) => ({
        src: s.src,
        name: `${stem}-${shown.indexOf(s) + 1}.${s.ext}`,
        alt: `Image ${i + 1} of ${viewable.length}`,
      }));
      gallery.replaceChildren(
        ...shown.map((s, i) => {
          const label = `Image ${i + 1} of ${shown.length}`;
          const name = `${stem}-${i + 1}.${s.ext}`;
          const thumb = btn(
            { cls: "thumb", title: `${label}: click to enlarge`, disabled: !s.src },
            s.src
              ? h("img", { src: s.src, alt: label, loading: "lazy", decoding: "async" })
              : h("span", { cls: "wait" }, `${label}: ${waiting}`),
          );
          listen(thumb, "click", () => {
            // The viewer loads the first time (js/lazy/viewer.ts); without a kernel it cannot.
            ctx.load<ShowPictures>("viewer").then(
              (show) => show(ctx, pictures, viewable.indexOf(s)),
              (e: Error) => ctx.announce(e.message),
            );
          });
          return h(
            "figure",
            { cls: "figure", "data-url": s.url },
            thumb,
            h("figcaption", {}, s.src && h("a", { href: s.src, download: name, $: "download" }, "Download")),
          );
        }),
      );
      gallery.hidden = shown.length === 0;
    }

    /** The kernel's `image-data` message: one buffer per URL in `urls`. */
    ctx.on("msg:custom", (raw, buffers) => {
      const msg = raw as { kind?: string; urls?: string[]; types?: string[]; failed?: string[] };
      if (msg.kind !== "image-data") return;
      const data = (buffers as DataView<ArrayBuffer>[] | undefined) ?? [];
      (msg.urls ?? []).forEach((url, i) => {
        const type = msg.types?.[i] ?? "";
        if (data[i] && !blobs.has(url) && IMAGE_TYPE.test(type)) {
          blobs.set(url, [URL.createObjectURL(new Blob([data[i]], { type })), type]);
        }
      });
      for (const url of msg.failed ?? []) direct.add(url);
      render();
      ctx.emit("images");
    });

    /** Revoke the blobs of runs no longer listed (or all of them: `keep` empty). */
    const drop = (keep: Set<string>): void => {
      for (const [url, [src]] of blobs) {
        if (!keep.has(url)) {
          URL.revokeObjectURL(src);
          blobs.delete(url);
        }
      }
    };
    ctx.on("change:tasks", () => {
      drop(new Set(ctx.runs().flatMap((r) => r.outputs)));
      render();
    });
    ctx.on("change:thumbnails", render);
    ctx.sub("shown", render);
    ctx.sub("link", render);
    ctx.cleanup(() => drop(new Set()));

    // Image bytes are messages, not state: a view made after the runs (a reloaded page, a
    // second view) asks for those of the runs it lists.
    const missing = [...new Set(ctx.runs().flatMap((r) => r.outputs))].filter(isLocalUrl);
    if (missing.length) {
      void ctx.send("fetch-images", { urls: missing }).then((reply) => {
        if (reply.ok) for (const url of missing) if (!reply.urls?.includes(url)) direct.add(url);
        render();
      });
    }
    render();
    return h("div", { cls: "results" }, caption, gallery);
  },
};
