/**
 * A running job's abort switch. An AbortController per job costs an
 * EventTarget and its listeners on the hot path, and most handlers never
 * look at their signal; so the controller is made on first use of `signal`
 * (already aborted, with the reason, if the job was aborted before), and the
 * worker races the handler against `abort` through one plain callback.
 */
export class JobControl {
  private controller: AbortController | null = null;
  private why: unknown = undefined;
  private done = false;
  private onAbort: ((reason: unknown) => void) | null = null;

  /** abort() was called */
  get aborted(): boolean {
    return this.done;
  }

  /** what abort() was called with */
  get reason(): unknown {
    return this.why;
  }

  /** The AbortSignal handed to the handler; made on first use. */
  get signal(): AbortSignal {
    if (!this.controller) {
      this.controller = new AbortController();
      if (this.done) this.controller.abort(this.why);
    }
    return this.controller.signal;
  }

  /** Fire once with `reason`, as AbortController.abort does; later calls are ignored. */
  abort(reason: unknown): void {
    if (this.done) return;
    this.done = true;
    this.why = reason;
    this.controller?.abort(reason);
    const onAbort = this.onAbort;
    this.onAbort = null;
    onAbort?.(reason);
  }

  /**
   * Run `fn(a, b)` (a synchronous throw becomes a rejection) and settle with
   * it, or reject with the reason as soon as abort() is called. One race per
   * control. Arguments rather than a closure: one object less per job.
   */
  race<A, B, T>(fn: (a: A, b: B) => T | Promise<T>, a: A, b: B): Promise<T> {
    if (this.done) return Promise.reject(this.why);
    let value: T | Promise<T>;
    try {
      value = fn(a, b);
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.done) {
      // fn aborted it (e.g. a synchronous cancel); its own outcome no longer matters.
      Promise.resolve(value).catch(() => undefined);
      return Promise.reject(this.why);
    }
    return new Promise<T>((resolve, reject) => {
      this.onAbort = reject;
      Promise.resolve(value).then(
        (v) => {
          this.onAbort = null;
          resolve(v);
        },
        (error: unknown) => {
          this.onAbort = null;
          reject(error);
        },
      );
    });
  }
}
