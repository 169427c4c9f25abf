// esbuild bundles CSS imports into static/widget.css; TypeScript only needs to know they exist.
declare module "*.css";
