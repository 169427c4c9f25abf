/**
 * The image viewer, loaded the first time an image is enlarged (see js/panels/panel.ts): one
 * modal dialog per view (`[data-role=viewer]`), the image, a download link named as given
 * (`[data-role=viewer-download]`), arrows for the next and previous image, Escape or a click
 * beside it to close. The results panel and the History tab use it.
 */
import type { Ctx } from "../context";
import { btn, h, listen } from "../dom";
import type { LazyModule } from "../panels/panel";
import "./viewer.css";

/** One image: what the img shows, the download's file name, the text for screen readers. */
export interface Picture {
  src: string;
  name: string;
  alt: string;
}

/** Show `pictures[index]` enlarged in the view of `ctx`. */
export type ShowPictures = (ctx: Ctx, pictures: Picture[], index: number) => void;

const views = new WeakMap<Ctx, (pictures: Picture[], index: number) => void>();

function viewer(ctx: Ctx): (pictures: Picture[], index: number) => void {
  const img = h("img", { alt: "" });
  const link = h("a", { download: "", $: "viewer-download" }, "Download");
  const close = btn({}, "Close");
  const dialog = h(
    "dialog",
    { cls: "viewer", $: "viewer", "aria-label": "Image" },
    img,
    h("div", { cls: "row between" }, link, close),
  );
  let items: Picture[] = [];
  let at = 0;
  const show = (index: number): void => {
    at = (index + items.length) % items.length;
    const item = items[at] ?? { src: "", name: "", alt: "" };
    img.src = item.src;
    img.alt = item.alt;
    link.href = item.src;
    link.download = item.name;
  };
  listen(close, "click", () => dialog.close());
  listen<MouseEvent>(dialog, "click", (e) => e.target === dialog && dialog.close());
  listen<KeyboardEvent>(dialog, "keydown", (e) => {
    if (e.key === "ArrowRight") show(at + 1);
    else if (e.key === "ArrowLeft") show(at - 1);
  });
  ctx.root.append(dialog);
  return (pictures, index) => {
    items = pictures;
    show(index);
    if (!dialog.open) dialog.showModal();
  };
}

const load: LazyModule<ShowPictures> = () => (ctx, pictures, index) => {
  let open = views.get(ctx);
  if (!open) {
    open = viewer(ctx);
    views.set(ctx, open);
  }
  open(pictures, index);
};
export default load;
