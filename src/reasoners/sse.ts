/**
 * Server-sent events framing, as much of it as a chat-completions stream
 * uses: `data:` lines (several join with a newline), a blank line ends an
 * event, `:` comments and other fields (`event:`, `id:`, `retry:`) are
 * skipped. Written here rather than taken from a package: it is these
 * few lines, and bytes split anywhere (inside a line, a CRLF or a UTF-8
 * character) must come out whole, which the tests pin down.
 */

export class SseDecoder {
  private readonly text = new TextDecoder();
  private buffer = '';
  private data: string[] = [];

  /** Feed raw bytes; returns the `data` of each event they completed. */
  push(chunk: Uint8Array): string[] {
    this.buffer += this.text.decode(chunk, { stream: true });
    return this.lines(false);
  }

  /** The stream ended: what is left (a last event without its blank line). */
  end(): string[] {
    this.buffer += this.text.decode();
    const out = this.lines(true);
    if (this.data.length > 0) out.push(this.data.join('\n'));
    this.data = [];
    return out;
  }

  /** Characters held back waiting for the end of their line. */
  get pending(): number {
    return this.buffer.length;
  }

  private lines(final: boolean): string[] {
    const out: string[] = [];
    for (;;) {
      const match = /\r\n|\r|\n/.exec(this.buffer);
      // A lone CR at the end may be the first half of a CRLF: wait for the next chunk.
      if (!match || (!final && match[0] === '\r' && match.index === this.buffer.length - 1)) break;
      const line = this.buffer.slice(0, match.index);
      this.buffer = this.buffer.slice(match.index + match[0].length);
      if (line === '') {
        if (this.data.length > 0) out.push(this.data.join('\n'));
        this.data = [];
      } else if (line.startsWith('data:')) {
        this.data.push(line.slice(line.startsWith('data: ') ? 6 : 5));
      }
    }
    if (final && this.buffer.startsWith('data:')) this.data.push(this.buffer.slice(this.buffer.startsWith('data: ') ? 6 : 5));
    if (final) this.buffer = '';
    return out;
  }
}
