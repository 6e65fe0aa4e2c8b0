// pg's own conversion of a JavaScript value to the text it sends as a parameter (pg/lib/utils.js, exported by pg).
declare module 'pg/lib/utils.js' {
  const utils: { prepareValue(value: unknown): unknown };
  export default utils;
}
