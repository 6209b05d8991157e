/** A small SSE reader for tests and benchmarks: feed it text as it arrives, get each message's fields. */
export interface SseMessage {
  /** `id`, `event`, `data` …; a comment (keep-alive) gives none */
  [field: string]: string;
}

/** Returns a feeder: call it with each chunk; `onMessage` gets every complete message, in order. */
export function sseReader(onMessage: (message: SseMessage) => void): (chunk: string) => void {
  let buffer = '';
  return (chunk) => {
    buffer += chunk;
    let at: number;
    while ((at = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, at);
      buffer = buffer.slice(at + 2);
      const fields: SseMessage = {};
      for (const line of block.split('\n')) {
        const colon = line.indexOf(':');
        if (colon <= 0) continue;
        fields[line.slice(0, colon)] = line.slice(colon + 1).replace(/^ /, '');
      }
      if (Object.keys(fields).length > 0) onMessage(fields);
    }
  };
}
