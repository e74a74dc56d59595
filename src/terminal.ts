/**
 * Text from outside (an Envoy NACK message, a registered name) printed to an operator's terminal
 * must not carry terminal control sequences or bidirectional overrides: those could rewrite or
 * hide what is shown. They are printed as visible escapes instead.
 */
// C0 controls (tab included), DEL, C1 controls, and the Unicode bidi embeddings, overrides and
// isolates.
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is its job
const unsafe = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/gu;

/** `text` with every control or bidi character shown as `\xNN` / `\u{NNNN}`; safe for one line. */
export function printable(text: string): string {
  return text.replace(unsafe, (c) => {
    const code = c.codePointAt(0)!;
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
  });
}
