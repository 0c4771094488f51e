// "peftjs-embed:<package>/<file>" imports: the file's text, inlined by the browser build
// (./esbuild-plugin.ts). Only *.browser.ts files use them.
declare module "peftjs-embed:*" {
  const text: string;
  export default text;
}
