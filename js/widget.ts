import "./widget.css";

export default {
  render({ el }: { el: HTMLElement }) {
    el.textContent = "siray-widgets";
  },
};
