/**
 * Coalesces concurrent calls of one script on one queue into a single script
 * call: a producer adding many jobs at once, or a worker finishing many in
 * the same event-loop turn, sends one EVALSHA for all of them instead of one
 * each. Fewer commands for Redis to parse and run, fewer replies for ioredis
 * to build; each caller still gets its own, independently fenced, outcome.
 */

interface Pending<T> {
  item: T;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

export interface BatcherOptions {
  /** items per script call */
  max?: number;
  /**
   * When to send: 'microtask' joins the calls made in the same synchronous
   * run (e.g. a `Promise.all` over enqueues) and adds no latency to a lone
   * call; 'immediate' waits one event-loop turn, so calls that arrive with
   * the same batch of I/O callbacks (completions) join as well.
   */
  schedule?: 'microtask' | 'immediate';
}

export class ScriptBatcher<T> {
  private readonly pending = new Map<string, Pending<T>[]>();
  private scheduled = false;
  private readonly max: number;
  private readonly schedule: 'microtask' | 'immediate';

  /**
   * @param run sends one script call for `prefix` with every item and
   *   resolves with one reply per item, in order
   */
  constructor(
    private readonly run: (prefix: string, items: T[]) => Promise<unknown[]>,
    options: BatcherOptions = {},
  ) {
    this.max = options.max ?? 128;
    this.schedule = options.schedule ?? 'immediate';
  }

  /** Queue one item; resolves with its own entry of the batched reply. */
  call(prefix: string, item: T): Promise<unknown> {
    return new Promise((resolve, reject) => {
      let list = this.pending.get(prefix);
      if (!list) this.pending.set(prefix, (list = []));
      list.push({ item, resolve, reject });
      if (list.length >= this.max) this.flush(prefix);
      else if (!this.scheduled) {
        this.scheduled = true;
        if (this.schedule === 'microtask') queueMicrotask(this.flushAll);
        else setImmediate(this.flushAll);
      }
    });
  }

  private readonly flushAll = (): void => {
    this.scheduled = false;
    for (const key of [...this.pending.keys()]) this.flush(key);
  };

  private flush(prefix: string): void {
    const list = this.pending.get(prefix);
    this.pending.delete(prefix);
    if (!list?.length) return;
    this.run(
      prefix,
      list.map((p) => p.item),
    ).then(
      (replies) => list.forEach((p, i) => p.resolve(replies[i])),
      (error: unknown) => list.forEach((p) => p.reject(error)),
    );
  }
}
